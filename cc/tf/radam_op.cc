// KerasoptApplyRAdam: RAdam on a resource variable, in one pass.
// The math lives in cc/kernels/radam.h; this file binds the op's inputs to it.
#include "cc/kernels/radam.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyRAdam")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("RAdam update of `var` and its slots by `grad`; see cc/kernels/radam.h.");

struct RAdamAlgo {
  template <typename C>
  using Rule = RAdamRule<C>;

  explicit RAdamAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyRAdam needs 2 slots (momentum, velocity), got ", num_slots));
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
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon, step);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyRAdam", RAdamAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyRAdam", RAdamAlgo, RAdamSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyRAdam.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyRAdam")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Doc("KerasoptApplyRAdam on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyRAdam", RAdamAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyRAdam", RAdamAlgo, RAdamSpec)

}  // namespace tf
}  // namespace kerasopt
