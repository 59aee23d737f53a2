// KerasoptLookaheadSync: Lookahead's every-k-steps synchronization of the slow
// and fast weights of one variable, in one pass. The math lives in
// cc/kernels/lookahead.h.
#include "cc/kernels/lookahead.h"
#include "cc/tf/pair_update_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptLookaheadSync")
    .Input("slow: resource")
    .Input("fast: resource")  // the model's variable
    .Input("slow_step_size: double")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("slow += slow_step_size * (fast - slow); fast = slow. See cc/kernels/lookahead.h.");

struct LookaheadSyncAlgo {
  template <typename C>
  using Rule = LookaheadSyncRule<C>;

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, Rule<C>* rule) const {
    double slow_step_size;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "slow_step_size", &slow_step_size));
    *rule = Rule<C>::Make(slow_step_size);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_PAIR_CPU("KerasoptLookaheadSync", LookaheadSyncAlgo)

}  // namespace tf
}  // namespace kerasopt
