// KerasoptApplyFtrl: FTRL-Proximal on a resource variable, in one pass.
// The math lives in cc/kernels/ftrl.h; this file binds the op's inputs to it.
#include "cc/kernels/ftrl.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/sparse_apply_gpu_op.h"
#include "cc/tf/sparse_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyFtrl")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulator, linear
    .Input("grad: T")
    .Input("lr: double")
    .Input("learning_rate_power: double")
    .Input("l1: double")
    .Input("l2: double")
    .Input("l2_shrinkage: double")
    .Input("beta: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("FTRL-Proximal update of `var` and its slots by `grad`; see cc/kernels/ftrl.h.");

REGISTER_OP("KerasoptSparseApplyFtrl")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulator, linear
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("learning_rate_power: double")
    .Input("l1: double")
    .Input("l2: double")
    .Input("l2_shrinkage: double")
    .Input("beta: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyFtrl: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct FtrlAlgo {
  template <typename C>
  using Rule = FtrlRule<C>;

  explicit FtrlAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyFtrl needs 2 slots (accumulator, linear), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots, Rule<C>* rule) const {
    double lr, power, l1, l2, l2_shrinkage, beta;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "learning_rate_power", &power));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "l1", &l1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "l2", &l2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "l2_shrinkage", &l2_shrinkage));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta", &beta));
    *rule = Rule<C>::Make(lr, power, l1, l2, l2_shrinkage, beta);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyFtrl", FtrlAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyFtrl", FtrlAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyFtrl", FtrlAlgo, FtrlSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyFtrl", FtrlAlgo, FtrlSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyFtrl.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyFtrl")
    .Input("lr: double")
    .Input("learning_rate_power: double")
    .Input("l1: double")
    .Input("l2: double")
    .Input("l2_shrinkage: double")
    .Input("beta: double")
    .Doc("KerasoptApplyFtrl on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyFtrl", FtrlAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyFtrl", FtrlAlgo, FtrlSpec)

}  // namespace tf
}  // namespace kerasopt
