// KerasoptApplyLion: Lion (sign momentum) on a resource variable, in one pass.
// The math lives in cc/kernels/lion.h; this file binds the op's inputs to it.
#include "cc/kernels/lion.h"
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

REGISTER_OP("KerasoptApplyLion")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Lion update of `var` and its momentum by `grad`; see cc/kernels/lion.h.");

REGISTER_OP("KerasoptSparseApplyLion")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyLion: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct LionAlgo {
  template <typename C>
  using Rule = LionRule<C>;

  explicit LionAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyLion needs 1 slot (momentum), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, beta_1, beta_2;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    *rule = Rule<C>::Make(lr, beta_1, beta_2);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyLion", LionAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyLion", LionAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyLion", LionAlgo, LionSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyLion", LionAlgo, LionSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyLion.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyLion")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Doc("KerasoptApplyLion on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyLion", LionAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyLion", LionAlgo, LionSpec)

}  // namespace tf
}  // namespace kerasopt
