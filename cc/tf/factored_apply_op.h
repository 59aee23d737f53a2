// The named driver of Adafactor (Driver::kFactored): the CPU OpKernel of its
// KerasoptApplyAdafactor op, registered by rule_ops.h from the declaration in
// cc/kernels/adafactor.h. One op per variable and step: it locks the variable
// and its slots, checks their dtypes and shapes (r and c depend on the
// variable's rank), builds the rule from the op's inputs through RuleAlgo and
// runs the three passes of cc/cpu/apply_factored.h on TensorFlow's thread pool.
//
// Slots, in input order: rank >= 2: r [shape[:-1]], c [shape[:-2] +
// shape[-1:]], velocity [shape]; rank < 2: velocity alone. All of the
// variable's dtype (Adafactor keeps no float32 slots for 16-bit variables).
// Every check runs before any write, so a failed op writes nothing.
//
// No multi-tensor or sparse op: the number of slots depends on the rank (one
// list op would take two slot layouts), and the update of every element
// depends on the whole gradient (row and column means, RMS(u)), so the rows a
// sparse gradient names are no smaller update. No GPU kernel: GPU variables
// take the composed-TF fallback (docs/gpu.md).
#pragma once

#define EIGEN_USE_THREADS

#include <string>
#include <vector>

#include "cc/cpu/apply_factored.h"
#include "cc/tf/dense_apply_op.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo>
class FactoredApplyOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;

  explicit FactoredApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES(ctx, num_slots_ == 1 || num_slots_ == 3,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", type_string(), " takes 3 slots (r, c, velocity) for a "
                    "variable of rank >= 2 or 1 (velocity) below, got ", num_slots_)));
  }

  void Compute(OpKernelContext* ctx) override {
    const int num_resources = 1 + num_slots_;
    std::vector<int> inputs(num_resources);
    for (int i = 0; i < num_resources; ++i) inputs[i] = i;
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, inputs);
    std::vector<Tensor> t(num_resources);
    for (int i = 0; i < num_resources; ++i) {
      OP_REQUIRES_OK(ctx, CheckVariableDtype<T>(ctx, i));
      OP_REQUIRES_OK(ctx, ::tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, i, /*lock_held=*/true, /*sparse=*/false, &t[i]));
      OP_REQUIRES(ctx, t[i].IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "kerasopt: variable '", VariableName(ctx, i), "' is not initialized")));
    }
    const Tensor& grad = ctx->input(num_resources);
    const Tensor& var = t[0];
    const std::string name = VariableName(ctx, 0);
    OP_REQUIRES(ctx, var.shape() == grad.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
                    " but its gradient has shape ", grad.shape().DebugString())));
    const bool factored = var.dims() >= 2;
    OP_REQUIRES(ctx, num_slots_ == (factored ? 3 : 1),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
                    ": ", type_string(), " takes ",
                    factored ? "3 slots (r, c, velocity) for rank >= 2"
                             : "1 slot (velocity) for rank < 2",
                    ", got ", num_slots_)));
    std::vector<::tensorflow::TensorShape> want(num_resources, var.shape());
    int64_t batch = 1, rows = var.NumElements(), cols = 0;
    if (factored) {
      const int rank = var.dims();
      rows = var.dim_size(rank - 2);
      cols = var.dim_size(rank - 1);
      want[1] = var.shape();
      want[1].RemoveLastDims(1);
      want[2] = var.shape();
      want[2].RemoveLastDims(2);
      want[2].AddDim(cols);
      for (int d = 0; d < rank - 2; ++d) batch *= var.dim_size(d);
    }
    for (int i = 1; i < num_resources; ++i) {
      OP_REQUIRES(ctx, t[i].shape() == want[i],
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
                      " but its slot '", VariableName(ctx, i), "' has shape ",
                      t[i].shape().DebugString(), " (want ", want[i].DebugString(), ")")));
    }

    // Only element-wise rules fuse the step's features: this refuses any
    // but an empty `features` (a plain step) rather than ignore them.
    const double* features;
    int feature_rows;
    OP_REQUIRES_OK(ctx, algo_.ReadStepFeatures(ctx, /*num_vars=*/0, &features, &feature_rows));

    Rule rule;
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, num_slots_, &rule));

    cpu::FactoredTensor<T> x{};
    x.n = var.NumElements();
    x.factored = factored;
    x.batch = batch;
    x.rows = rows;
    x.cols = cols;
    x.var = t[0].flat<T>().data();
    x.grad = grad.flat<T>().data();
    x.velocity = t[num_slots_].flat<T>().data();
    if (factored) {
      x.r = t[1].flat<T>().data();
      x.c = t[2].flat<T>().data();
    }
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    cpu::ApplyFactored(rule, x, [pool](int64_t n, int64_t cost, auto&& fn) {
      if (n > 0) pool->ParallelFor(n, cost, fn);
    });
  }

 private:
  Algo algo_;
  int num_slots_ = 0;
};

}  // namespace tf
}  // namespace kerasopt
