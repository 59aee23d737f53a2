// The GPU OpKernel of every dense "apply" op: DenseApplyOp's checks and
// locking, then one launch of the CUDA driver (cc/cuda/dense_driver.cuh) on
// TensorFlow's stream for the op.
//
// Host compiler, TensorFlow headers, no CUDA headers; the op's scalar inputs
// stay on the device (see gpu_apply_op_base.h).
//
// It takes the CPU op's Algo (attrs, slot checks, which rule slot each passed
// resource fills) and the rule's declaration (cc/kernels/declaration.h: which
// inputs build the rule on the device); rule_ops.h registers it for every
// declared rule when the library is built with its CUDA sources
// (KERASOPT_WITH_CUDA, set by CMakeLists.txt and bazel/cuda.bzl).
#pragma once

#if KERASOPT_WITH_CUDA

#include <optional>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/tf/gpu_apply_op_base.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo, typename Spec>
class DenseApplyGpuOp : public GpuApplyOpBase<T, Algo, Spec> {
 public:
  using Base = GpuApplyOpBase<T, Algo, Spec>;
  using Base::Base;

  void Compute(OpKernelContext* ctx) override {
    void* stream;
    OP_REQUIRES_OK(ctx, this->Stream(ctx, &stream));
    std::optional<::tensorflow::VariableInputLockHolder> locks;
    std::vector<Tensor> tensors;
    OP_REQUIRES_OK(ctx, this->LockedVariableTensors(ctx, stream, /*sparse=*/false, &locks,
                                                    &tensors));
    const Tensor& grad = ctx->input(1 + this->num_slots_);
    OP_REQUIRES_OK(ctx, CheckDenseShapes(ctx, tensors, grad,
                                         OneValueInputs<typename Base::Rule>(
                                             this->algo_, this->num_slots_)));

    cuda::DenseArgs args{};
    args.stream = stream;
    args.n = tensors[0].NumElements();
    args.var = tensors[0].data();
    this->SlotPointers(tensors.data() + 1, args.slots);
    args.grad = grad.data();
    OP_REQUIRES_OK(ctx, this->ReadRuleInputs(ctx, &args.inputs));

    constexpr cuda::DType dtype = CudaDType<T>();
    Tensor scratch;
    const int64_t scratch_bytes = cuda::DenseScratchBytes<Spec>(dtype, args.n);
    if (scratch_bytes > 0) {
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(::tensorflow::DT_INT8,
                                             ::tensorflow::TensorShape({scratch_bytes}),
                                             &scratch));
      args.scratch = scratch.data();
    }
    if (const char* error = cuda::LaunchDense<Spec>(dtype, args)) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", this->type_string(), " on variable '", VariableName(ctx, 0),
          "' failed to launch: ", error)));
    }
  }
};

}  // namespace tf
}  // namespace kerasopt

#endif  // KERASOPT_WITH_CUDA
