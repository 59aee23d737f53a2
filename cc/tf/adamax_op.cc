// KerasoptApplyAdamax: Adamax on a resource variable, in one pass.
// The math lives in cc/kernels/adamax.h; this file binds the op's inputs to it.
#include "cc/kernels/adamax.h"
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

REGISTER_OP("KerasoptApplyAdamax")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, norm
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Adamax update of `var` and its slots by `grad`; see cc/kernels/adamax.h.");

REGISTER_OP("KerasoptSparseApplyAdamax")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, norm
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyAdamax: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct AdamaxAlgo {
  template <typename C>
  using Rule = AdamaxRule<C>;

  explicit AdamaxAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyAdamax needs 2 slots (momentum, norm), got ", num_slots));
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

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyAdamax", AdamaxAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyAdamax", AdamaxAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdamax", AdamaxAlgo, AdamaxSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdamax", AdamaxAlgo, AdamaxSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyAdamax.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyAdamax")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("step: int64")  // optimizer.iterations + 1
    .Doc("KerasoptApplyAdamax on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyAdamax", AdamaxAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdamax", AdamaxAlgo, AdamaxSpec)

}  // namespace tf
}  // namespace kerasopt
