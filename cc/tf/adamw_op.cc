// KerasoptApplyAdamw: AdamW (Adam with decoupled weight decay) on a resource
// variable, decay and update in one pass. The math lives in cc/kernels/adamw.h.
#include "cc/kernels/adamw.h"
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

REGISTER_OP("KerasoptApplyAdamw")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity[, velocity_hat]
    .Input("grad: T")
    .Input("lr: double")
    .Input("weight_decay: double")  // 0 for variables excluded from weight decay
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .Attr("amsgrad: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("AdamW update (decay, then Adam) of `var` and its slots by `grad`; "
         "see cc/kernels/adamw.h.");

REGISTER_OP("KerasoptSparseApplyAdamw")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity[, velocity_hat]
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("weight_decay: double")  // 0 for variables excluded from weight decay
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .Attr("amsgrad: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyAdamw: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct AdamwAlgo {
  template <typename C>
  using Rule = AdamwRule<C>;

  explicit AdamwAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("amsgrad", &amsgrad));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    const int want = amsgrad ? 3 : 2;
    if (num_slots == want) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdamw needs ", want, " slots (momentum, velocity",
        amsgrad ? ", velocity_hat" : "", "), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, weight_decay, beta_1, beta_2, epsilon;
    int64_t step;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "weight_decay", &weight_decay));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    TF_RETURN_IF_ERROR(ReadStep(ctx, &step));
    // The multi-tensor op has no single "grad": ForVariable sets each size.
    int64_t num_elements = 2;
    const Tensor* grad;
    if (ctx->input("grad", &grad).ok()) num_elements = grad->NumElements();
    *rule = Rule<C>::Make(lr, weight_decay, beta_1, beta_2, epsilon, step,
                          amsgrad, num_elements);
    return absl::OkStatus();
  }
  // The decay's rounding depends on the variable's size (cc/kernels/adamw.h).
  template <typename C>
  void ForVariable(int64_t num_elements, Rule<C>* rule) const {
    rule->factor_first = num_elements > 1;
  }

  bool amsgrad = false;
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdamw", AdamwAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyAdamw", AdamwAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdamw", AdamwAlgo, AdamwSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdamw", AdamwAlgo, AdamwSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdamw.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdamw")
    .Input("lr: double")
    .Input("weight_decay: double")  // 0 for variables excluded from weight decay
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("amsgrad: bool = false")
    .Doc("KerasoptApplyAdamw on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdamw", AdamwAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdamw", AdamwAlgo, AdamwSpec)

}  // namespace tf
}  // namespace kerasopt
