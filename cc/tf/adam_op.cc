// KerasoptApplyAdam: Adam / AMSGrad on a resource variable, in one pass.
// The math lives in cc/kernels/adam.h; this file binds the op's inputs to it.
#include "cc/kernels/adam.h"
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

REGISTER_OP("KerasoptApplyAdam")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity[, velocity_hat]
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .Attr("amsgrad: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Adam update of `var` and its slots by `grad`; see cc/kernels/adam.h.");

REGISTER_OP("KerasoptSparseApplyAdam")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity[, velocity_hat]
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .Attr("amsgrad: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyAdam: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct AdamAlgo {
  template <typename C>
  using Rule = AdamRule<C>;

  explicit AdamAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("amsgrad", &amsgrad));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    const int want = amsgrad ? 3 : 2;
    if (num_slots == want) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdam needs ", want, " slots (momentum, velocity",
        amsgrad ? ", velocity_hat" : "", "), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, beta_1, beta_2, epsilon;
    int64_t step;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    TF_RETURN_IF_ERROR(ReadStep(ctx, &step));
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon, step, amsgrad);
    return absl::OkStatus();
  }

  bool amsgrad = false;
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdam", AdamAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyAdam", AdamAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdam", AdamAlgo, AdamSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdam", AdamAlgo, AdamSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdam.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdam")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("amsgrad: bool = false")
    .Doc("KerasoptApplyAdam on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdam", AdamAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdam", AdamAlgo, AdamSpec)

}  // namespace tf
}  // namespace kerasopt
