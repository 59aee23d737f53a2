// KerasoptApplyRmsprop: RMSprop (optionally centered, optionally with momentum)
// on a resource variable, in one pass.
// The math lives in cc/kernels/rmsprop.h; this file binds the op's inputs to it.
#include "cc/kernels/rmsprop.h"
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

REGISTER_OP("KerasoptApplyRmsprop")
    .Input("var: resource")
    // velocity[, momentum when momentum > 0][, average_gradient when centered]
    .Input("slots: num_slots * resource")
    .Input("grad: T")
    .Input("lr: double")
    .Input("rho: double")
    .Input("momentum: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 1")
    .Attr("centered: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("RMSprop update of `var` and its slots by `grad`; see cc/kernels/rmsprop.h.");

REGISTER_OP("KerasoptSparseApplyRmsprop")
    .Input("var: resource")
    // velocity[, momentum when momentum > 0][, average_gradient when centered]
    .Input("slots: num_slots * resource")
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("rho: double")
    .Input("momentum: double")
    .Input("epsilon: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 1")
    .Attr("centered: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyRmsprop: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct RmspropAlgo {
  template <typename C>
  using Rule = RmspropRule<C>;

  explicit RmspropAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("centered", &centered));
  }
  // velocity, then the momentum slot if passed, then average_gradient if centered.
  bool HasMomentumSlot(int num_slots) const {
    return num_slots == (centered ? 3 : 2);
  }
  absl::Status CheckNumSlots(int num_slots) const {
    const int base = centered ? 2 : 1;
    if (num_slots == base || num_slots == base + 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyRmsprop needs ", base, " or ", base + 1,
        " slots (velocity[, momentum]", centered ? ", average_gradient" : "",
        "), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const {
    if (slot == 0) return true;
    if (slot == 1) return HasMomentumSlot(num_slots);
    return centered;
  }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, rho, momentum, epsilon;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "rho", &rho));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "momentum", &momentum));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    if ((momentum > 0.0) != HasMomentumSlot(num_slots)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KerasoptApplyRmsprop: momentum=", momentum,
          momentum > 0.0 ? " needs the momentum slot"
                         : " takes no momentum slot (only momentum > 0 does)"));
    }
    *rule = Rule<C>::Make(lr, rho, momentum, epsilon, centered);
    return absl::OkStatus();
  }

  bool centered = false;
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyRmsprop", RmspropAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyRmsprop", RmspropAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyRmsprop", RmspropAlgo, RmspropSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyRmsprop", RmspropAlgo, RmspropSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyRmsprop.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyRmsprop")
    .Input("lr: double")
    .Input("rho: double")
    .Input("momentum: double")
    .Input("epsilon: double")
    .Attr("centered: bool = false")
    .Doc("KerasoptApplyRmsprop on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyRmsprop", RmspropAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyRmsprop", RmspropAlgo, RmspropSpec)

}  // namespace tf
}  // namespace kerasopt
