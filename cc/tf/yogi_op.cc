// KerasoptApplyYogi: Yogi on a resource variable, in one pass.
// The math lives in cc/kernels/yogi.h; this file binds the op's inputs to it.
#include "cc/kernels/yogi.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplyYogi")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Yogi update of `var` and its slots by `grad`; see cc/kernels/yogi.h.");

struct YogiAlgo {
  template <typename C>
  using Rule = YogiRule<C>;

  explicit YogiAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyYogi needs 2 slots (momentum, velocity), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int, Rule<C>* rule) const {
    double lr, beta_1, beta_2, epsilon;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyYogi", YogiAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyYogi", YogiAlgo, YogiSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyYogi.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyYogi")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Doc("KerasoptApplyYogi on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyYogi", YogiAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyYogi", YogiAlgo, YogiSpec)

}  // namespace tf
}  // namespace kerasopt
