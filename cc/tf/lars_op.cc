// KerasoptApplyLars: LARS on a resource variable, in one op: a pass that sums
// the squares of ||w|| and ||g||, then one dense pass that updates the momentum
// and the weight with the layer's rate (cc/cpu/apply_after_norms.h). The math
// lives in cc/kernels/lars.h; this file binds the op's inputs to it.
#include "cc/cpu/apply_after_norms.h"
#include "cc/kernels/lars.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyLars")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // [momentum] when momentum != 0
    .Input("grad: T")
    .Input("lr: double")
    .Input("momentum: double")
    .Input("weight_decay: double")  // 0 for a variable excluded from weight decay
    .Input("eta: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .Attr("nesterov: bool = false")
    .Attr("layer_adaptation: bool = true")  // false: local rate 1, no norms
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("LARS update of `var` (and its momentum) by `grad`; see cc/kernels/lars.h.");

struct LarsAlgo {
  template <typename C>
  using Rule = LarsRule<C>;

  explicit LarsAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("layer_adaptation", &layer_adaptation));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots <= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyLars takes 0 or 1 slots, got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, momentum, weight_decay, eta;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "momentum", &momentum));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "weight_decay", &weight_decay));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "eta", &eta));
    if (momentum != 0.0 && num_slots == 0) {
      return absl::InvalidArgumentError(
          "KerasoptApplyLars: momentum != 0 needs the momentum slot");
    }
    *rule = Rule<C>::Make(lr, momentum, weight_decay, eta, nesterov, layer_adaptation);
    return absl::OkStatus();
  }

  bool nesterov = false;
  bool layer_adaptation = true;
};

KERASOPT_REGISTER_DENSE_CPU_WITH_DRIVER("KerasoptApplyLars", LarsAlgo, ::kerasopt::cpu::AfterNorms)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyLars", LarsAlgo, LarsSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h): every
// variable's norms in one pass, then one dense pass (cpu::MultiNormsThenDense).
// The same scalar inputs and attrs as KerasoptApplyLars; variables with other
// weight decays or layer_adaptation go to other launches.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyLars")
    .Input("lr: double")
    .Input("momentum: double")
    .Input("weight_decay: double")  // 0 for variables excluded from weight decay
    .Input("eta: double")
    .Attr("nesterov: bool = false")
    .Attr("layer_adaptation: bool = true")
    .Doc("KerasoptApplyLars on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU_WITH_DRIVER("KerasoptMultiApplyLars", LarsAlgo, ::kerasopt::cpu::AfterNorms)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyLars", LarsAlgo, LarsSpec)

}  // namespace tf
}  // namespace kerasopt
