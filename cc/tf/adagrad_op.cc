// KerasoptApplyAdagrad: Adagrad on a resource variable, in one pass.
// The math lives in cc/kernels/adagrad.h; this file binds the op's inputs to it.
#include "cc/kernels/adagrad.h"
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

REGISTER_OP("KerasoptApplyAdagrad")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulator
    .Input("grad: T")
    .Input("lr: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Adagrad update of `var` and its accumulator by `grad`; see cc/kernels/adagrad.h.");

REGISTER_OP("KerasoptSparseApplyAdagrad")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulator
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyAdagrad: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct AdagradAlgo {
  template <typename C>
  using Rule = AdagradRule<C>;

  explicit AdagradAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdagrad needs 1 slot (accumulator), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, epsilon;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    *rule = Rule<C>::Make(lr, epsilon);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdagrad", AdagradAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyAdagrad", AdagradAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdagrad", AdagradAlgo, AdagradSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdagrad", AdagradAlgo, AdagradSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdagrad.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdagrad")
    .Input("lr: double")
    .Input("epsilon: double")
    .Doc("KerasoptApplyAdagrad on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdagrad", AdagradAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdagrad", AdagradAlgo, AdagradSpec)

}  // namespace tf
}  // namespace kerasopt
