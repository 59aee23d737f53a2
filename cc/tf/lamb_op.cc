// KerasoptApplyLamb: LAMB on a resource variable, in one op: a pass that
// updates the moments and sums the squares of ||w|| and ||r||, then a pass
// that applies the trust-ratio step (cc/cpu/apply_with_norms.h). The math
// lives in cc/kernels/lamb.h; this file binds the op's inputs to it.
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/lamb.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyLamb")
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
    .Doc("LAMB update of `var` and its slots by `grad`; see cc/kernels/lamb.h.");

struct LambAlgo {
  template <typename C>
  using Rule = LambRule<C>;

  explicit LambAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyLamb needs 2 slots (momentum, velocity), got ", num_slots));
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
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon, step);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU_WITH_DRIVER("KerasoptApplyLamb", LambAlgo, ::kerasopt::cpu::WithNorms)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyLamb", LambAlgo, LambSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyLamb.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyLamb")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Doc("KerasoptApplyLamb on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU_WITH_DRIVER("KerasoptMultiApplyLamb", LambAlgo, ::kerasopt::cpu::WithNorms)
// One dense two-pass launch per variable inside the op (multi_apply_gpu_op.h).
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyLamb", LambAlgo, LambSpec)

}  // namespace tf
}  // namespace kerasopt
