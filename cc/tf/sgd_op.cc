// KerasoptApplySgd: SGD with optional (Nesterov) momentum on a resource variable.
// The math lives in cc/kernels/sgd.h; this file binds the op's inputs to it.
#include "cc/kernels/sgd.h"
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

REGISTER_OP("KerasoptApplySgd")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // [momentum] when momentum != 0
    .Input("grad: T")
    .Input("lr: double")
    .Input("momentum: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .Attr("nesterov: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("SGD update of `var` (and its momentum) by `grad`; see cc/kernels/sgd.h.");

REGISTER_OP("KerasoptSparseApplySgd")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // [momentum] when momentum != 0
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("momentum: double")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .Attr("nesterov: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplySgd: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct SgdAlgo {
  template <typename C>
  using Rule = SgdRule<C>;

  explicit SgdAlgo(OpKernelConstruction* ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov));
  }
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots <= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplySgd takes 0 or 1 slots, got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, momentum;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "momentum", &momentum));
    if (momentum != 0.0 && num_slots == 0) {
      return absl::InvalidArgumentError(
          "KerasoptApplySgd: momentum != 0 needs the momentum slot");
    }
    *rule = Rule<C>::Make(lr, momentum, nesterov);
    return absl::OkStatus();
  }

  bool nesterov = false;
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplySgd", SgdAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplySgd", SgdAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplySgd", SgdAlgo, SgdSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplySgd", SgdAlgo, SgdSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplySgd.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplySgd")
    .Input("lr: double")
    .Input("momentum: double")
    .Attr("nesterov: bool = false")
    .Doc("KerasoptApplySgd on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplySgd", SgdAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplySgd", SgdAlgo, SgdSpec)

}  // namespace tf
}  // namespace kerasopt
