// KerasoptApplyAdaBelief: AdaBelief on a resource variable, in one pass.
// The math lives in cc/kernels/adabelief.h; this file binds the op's inputs to it.
#include "cc/kernels/adabelief.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyAdaBelief")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, belief
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
    .Doc("AdaBelief update of `var` and its slots by `grad`; see cc/kernels/adabelief.h.");

struct AdaBeliefAlgo {
  template <typename C>
  using Rule = AdaBeliefRule<C>;

  explicit AdaBeliefAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("amsgrad", &amsgrad));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdaBelief needs 2 slots (momentum, belief), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int, Rule<C>* rule) const {
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

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdaBelief", AdaBeliefAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdaBelief", AdaBeliefAlgo, AdaBeliefSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdaBelief.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdaBelief")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("amsgrad: bool = false")
    .Doc("KerasoptApplyAdaBelief on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdaBelief", AdaBeliefAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdaBelief", AdaBeliefAlgo, AdaBeliefSpec)

}  // namespace tf
}  // namespace kerasopt
