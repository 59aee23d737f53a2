// KerasoptApplyNovoGrad: NovoGrad on a resource variable, in one op: a pass
// that sums ||g||^2, the per-variable second moment (a scalar slot), then a
// pass that updates the momentum and the weight (cc/cpu/apply_layerwise.h).
// The math lives in cc/kernels/novograd.h; this file binds the op's inputs to it.
#include "cc/cpu/apply_layerwise.h"
#include "cc/kernels/novograd.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyNovoGrad")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum (var's shape), velocity (shape ())
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("weight_decay: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .Attr("grad_averaging: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("NovoGrad update of `var` and its slots by `grad`; see cc/kernels/novograd.h.");

struct NovoGradAlgo {
  template <typename C>
  using Rule = NovoGradRule<C>;

  explicit NovoGradAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("grad_averaging", &grad_averaging));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyNovoGrad needs 2 slots (momentum, velocity), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int, Rule<C>* rule) const {
    double lr, beta_1, beta_2, epsilon, weight_decay;
    int64_t step;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "weight_decay", &weight_decay));
    TF_RETURN_IF_ERROR(ReadStep(ctx, &step));
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon, weight_decay, step, grad_averaging);
    return absl::OkStatus();
  }

  bool grad_averaging = false;
};

KERASOPT_REGISTER_DENSE_CPU_WITH_DRIVER("KerasoptApplyNovoGrad", NovoGradAlgo,
                                        ::kerasopt::cpu::Layerwise)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyNovoGrad", NovoGradAlgo, NovoGradSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h): every
// variable's ||g|| in one pass, then one dense pass (cpu::MultiNormsThenDense).
// The same scalar inputs and attrs as KerasoptApplyNovoGrad; each variable's
// velocity slot has shape ().
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyNovoGrad")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("weight_decay: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("grad_averaging: bool = false")
    .Doc("KerasoptApplyNovoGrad on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU_WITH_DRIVER("KerasoptMultiApplyNovoGrad", NovoGradAlgo,
                                        ::kerasopt::cpu::Layerwise)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyNovoGrad", NovoGradAlgo, NovoGradSpec)

}  // namespace tf
}  // namespace kerasopt
