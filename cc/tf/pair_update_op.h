// The OpKernel shared by ops that update one resource variable from another of
// the same shape, element by element (Lookahead's sync of slow and fast
// weights, the running average of iterates): it locks both variables (in
// address order, as TensorFlow's training ops do), checks dtypes and shapes,
// builds the rule from the op's scalar inputs and runs it with
// cc/cpu/apply_pair.h on TensorFlow's intra-op thread pool.
//
// An op plugs in with a small "Algo" struct:
//   template <typename C> using Rule = ...;     // from cc/kernels/
//   template <typename C>
//   absl::Status MakeRule(OpKernelContext*, Rule<C>*) const;
// Inputs 0 and 1 are the variables the rule sees as (first, second).
#pragma once

#define EIGEN_USE_THREADS

#include <vector>

#include "cc/cpu/apply_pair.h"
#include "cc/kernels/common.h"
#include "cc/tf/dense_apply_op.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo>
class PairUpdateOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;

  explicit PairUpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, {0, 1});
    Tensor tensors[2];
    for (int i = 0; i < 2; ++i) {
      OP_REQUIRES_OK(ctx, CheckDtype(ctx, i));
      OP_REQUIRES_OK(ctx, ::tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, i, /*lock_held=*/true, /*sparse=*/false,
                              &tensors[i]));
      OP_REQUIRES(ctx, tensors[i].IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "kerasopt: variable '", VariableName(ctx, i),
                      "' is not initialized")));
    }
    OP_REQUIRES(ctx, tensors[0].shape() == tensors[1].shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", type_string(), ": variable '", VariableName(ctx, 0),
                    "' has shape ", tensors[0].shape().DebugString(), " but '",
                    VariableName(ctx, 1), "' has shape ",
                    tensors[1].shape().DebugString())));
    Rule rule;
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, &rule));
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    cpu::ApplyPair(rule, tensors[0].NumElements(), tensors[0].template flat<T>().data(),
                   tensors[1].template flat<T>().data(),
                   [pool](int64_t n, int64_t cost, auto&& fn) {
                     pool->ParallelFor(n, cost, fn);
                   });
  }

 private:
  static absl::Status CheckDtype(OpKernelContext* ctx, int input) {
    ::tensorflow::core::RefCountPtr<::tensorflow::Var> v;
    TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
        ctx, ::tensorflow::HandleFromInput(ctx, input), &v));
    const auto want = ::tensorflow::DataTypeToEnum<T>::value;
    if (v->tensor()->dtype() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: variable '", VariableName(ctx, input), "' has dtype ",
          ::tensorflow::DataTypeString(v->tensor()->dtype()), " but the op was given dtype ",
          ::tensorflow::DataTypeString(want)));
    }
    return absl::OkStatus();
  }

  Algo algo_;
};

}  // namespace tf
}  // namespace kerasopt

// Registers the CPU kernels of a pair update op for every float dtype.
#define KERASOPT_REGISTER_PAIR_CPU(OP_NAME, ALGO)                    \
  KERASOPT_REGISTER_PAIR_CPU_T(OP_NAME, ALGO, Eigen::half)            \
  KERASOPT_REGISTER_PAIR_CPU_T(OP_NAME, ALGO, ::tensorflow::bfloat16) \
  KERASOPT_REGISTER_PAIR_CPU_T(OP_NAME, ALGO, float)                  \
  KERASOPT_REGISTER_PAIR_CPU_T(OP_NAME, ALGO, double)
#define KERASOPT_REGISTER_PAIR_CPU_T(OP_NAME, ALGO, T)                               \
  REGISTER_KERNEL_BUILDER(                                                          \
      Name(OP_NAME).Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),        \
      ::kerasopt::tf::PairUpdateOp<T, ALGO>);
