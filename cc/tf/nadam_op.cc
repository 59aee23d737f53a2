// KerasoptApplyNadam: Nadam on a resource variable, in one pass.
// The math lives in cc/kernels/nadam.h; this file binds the op's inputs to it.
// The optimizer's scalar state u_product (the running product of the momentum
// schedule) is updated once per step by the optimizer and passed in.
#include "cc/kernels/nadam.h"
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

REGISTER_OP("KerasoptApplyNadam")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity
    .Input("grad: T")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("u_product: double")  // prod of mu_1..mu_t, already including this step
    .Input("step: int64")        // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Nadam update of `var` and its slots by `grad`; see cc/kernels/nadam.h.");

REGISTER_OP("KerasoptSparseApplyNadam")
    .Input("var: resource")
    .Input("slots: num_slots * resource")  // momentum, velocity
    .Input("grad: T")  // values of the IndexedSlices: [num_indices, row...]
    .Input("indices: Tindices")  // rows of var, [num_indices]
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("u_product: double")  // prod of mu_1..mu_t, already including this step
    .Input("step: int64")        // optimizer.iterations + 1
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindices: {int32, int64}")
    .Attr("num_slots: int >= 0")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("Sparse form of KerasoptApplyNadam: the rows of `var` and its slots named by `indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h.");

struct NadamAlgo {
  template <typename C>
  using Rule = NadamRule<C>;

  explicit NadamAlgo(OpKernelConstruction*) {}
  absl::Status CheckNumSlots(int num_slots) const {
    if (num_slots == 2) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "KerasoptApplyNadam needs 2 slots (momentum, velocity), got ", num_slots));
  }
  bool SlotPresent(int slot, int num_slots) const { return slot < num_slots; }

  template <typename C>
  absl::Status MakeRule(OpKernelContext* ctx, int num_slots,
                        Rule<C>* rule) const {
    double lr, beta_1, beta_2, epsilon, u_product;
    int64_t step;
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "lr", &lr));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_1", &beta_1));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "beta_2", &beta_2));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "epsilon", &epsilon));
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "u_product", &u_product));
    TF_RETURN_IF_ERROR(ReadStep(ctx, &step));
    *rule = Rule<C>::Make(lr, beta_1, beta_2, epsilon, u_product, step);
    return absl::OkStatus();
  }
};

KERASOPT_REGISTER_DENSE_CPU("KerasoptApplyNadam", NadamAlgo)
KERASOPT_REGISTER_SPARSE_CPU("KerasoptSparseApplyNadam", NadamAlgo)
KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyNadam", NadamAlgo, NadamSpec)
KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyNadam", NadamAlgo, NadamSpec)

// One launch for a list of variables (cc/tf/multi_apply_op.h); the same
// scalar inputs and attrs as KerasoptApplyNadam.
KERASOPT_MULTI_APPLY_OP("KerasoptMultiApplyNadam")
    .Input("lr: double")
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Input("u_product: double")  // prod of mu_1..mu_t, already including this step
    .Input("step: int64")        // optimizer.iterations + 1
    .Doc("KerasoptApplyNadam on N variables in one launch.");
KERASOPT_REGISTER_MULTI_CPU("KerasoptMultiApplyNadam", NadamAlgo)
KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyNadam", NadamAlgo, NadamSpec)

}  // namespace tf
}  // namespace kerasopt
