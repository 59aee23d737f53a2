// KerasoptApplyAdadelta: Adadelta on a resource variable, in one pass.
// The math lives in cc/kernels/adadelta.h; this file binds the op's inputs to it.
#include "cc/kernels/adadelta.h"
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

REGISTER_OP("KerasoptApplyAdadelta")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulated_grad, accumulated_delta_var
    .Input("grad: T")
    .Input("lr: double")
    .Input("rho: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Adadelta update of `var` and its slots by `grad`; see cc/kernels/adadelta.h.");

REGISTER_OP("KerasoptSparseApplyAdadelta")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // accumulated_grad, accumulated_delta_var
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("rho: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyAdadelta: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct AdadeltaAlgo {
  template <typename C>
  using Rule = AdadeltaRule<C>;

  explicit AdadeltaAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdadelta needs 2 slots (accumulated_grad, "
        "accumulated_delta_var), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, rho, epsilon;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "rho", &rho));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    *rule = Rule<C>::Make(lr, rho, epsilon);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdadelta", AdadeltaAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyAdadelta", AdadeltaAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdadelta", AdadeltaAlgo, AdadeltaSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdadelta", AdadeltaAlgo, AdadeltaSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdadelta.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdadelta")
    .Input("lr: double")
    .Input("rho: double")
    .Input("epsilon: double")
    .Doc("KerasoptApplyAdadelta on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdadelta", AdadeltaAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdadelta", AdadeltaAlgo, AdadeltaSpec)

}  // namespace tf
}  // namespace kerasopt
