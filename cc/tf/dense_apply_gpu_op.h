// The GPU OpKernel of every dense "apply" op: DenseApplyOp's checks and
// locking, then one launch of the CUDA driver (cc/cuda/dense_driver.cuh) on
// TensorFlow's stream for the op.
//
// This file is compiled by the host compiler with TensorFlow's headers and
// never includes a CUDA header: it hands the launcher (cc/cuda/launch.h) raw
// device pointers, and the stream as the void* that StreamExecutor's
// platform_specific_handle() gives. The op's scalar inputs stay on the device
// (no HostMemory): the launcher builds the rule there, so an update never
// waits for the device.
//
// Registration reuses the CPU op's Algo struct (attrs, slot checks, which
// rule slot each passed resource fills) and adds the algorithm's spec
// (cc/cuda/rule_specs.h: which scalar inputs and attrs build the rule):
//   KERASOPT_REGISTER_DENSE_GPU("KerasoptApplyAdam", AdamAlgo, AdamSpec)
// It registers nothing unless the library is built with its CUDA sources
// (KERASOPT_WITH_CUDA, set by CMakeLists.txt and bazel/cuda.bzl).
#pragma once

#if KERASOPT_WITH_CUDA

#include <array>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/cuda/rule_specs.h"
#include "cc/tf/dense_apply_op.h"
#include "xla/stream_executor/stream.h"

namespace kerasopt {
namespace tf {

template <typename T>
constexpr cuda::DType CudaDType() {
  if constexpr (std::is_same_v<T, Eigen::half>) return cuda::DType::kHalf;
  if constexpr (std::is_same_v<T, ::tensorflow::bfloat16>) return cuda::DType::kBfloat16;
  if constexpr (std::is_same_v<T, float>) return cuda::DType::kFloat;
  if constexpr (std::is_same_v<T, double>) return cuda::DType::kDouble;
}

// The op's CUDA stream (a cudaStream_t), or nullptr.
inline void* CudaStream(OpKernelContext* ctx) {
  auto* device_context = ctx->op_device_context();
  if (device_context == nullptr || device_context->stream() == nullptr) return nullptr;
  return device_context->stream()->platform_specific_handle().stream;
}

// Replaces the variable's buffer by a copy of it (made on `stream`), so that
// an update in place never changes a tensor a reader still holds. The
// variable's lock is held. `name` names the variable in the error.
inline absl::Status GpuCopyVariableBuffer(OpKernelContext* ctx, ::tensorflow::Var* var,
                                          void* stream, const std::string& name) {
  Tensor* tensor = var->tensor();
  Tensor copy;
  ::tensorflow::AllocatorAttributes attr;
  attr.set_gpu_compatible(true);
  attr.set_nic_compatible(true);
  TF_RETURN_IF_ERROR(ctx->allocate_temp(tensor->dtype(), tensor->shape(), &copy, attr));
  if (const char* error = cuda::CopyDeviceToDevice(stream, copy.data(), tensor->data(),
                                                   tensor->TotalBytes())) {
    return absl::InternalError(
        absl::StrCat("kerasopt: copying variable '", name, "': ", error));
  }
  *tensor = copy;
  return absl::OkStatus();
}

// The GPU form of TensorFlow's PrepareToUpdateVariable for a dense update of
// a looked-up variable: copied first when a reader still holds its buffer or
// it is in copy-on-read mode. The variable's lock is held.
inline absl::Status GpuPrepareDenseUpdate(OpKernelContext* ctx, ::tensorflow::Var* var,
                                          void* stream, const std::string& name) {
  if (!var->tensor()->IsInitialized()) {
    return absl::FailedPreconditionError(
        absl::StrCat("kerasopt: variable '", name, "' is not initialized"));
  }
  if (var->copy_on_read_mode.load() || !var->tensor()->RefCountIsOne()) {
    return GpuCopyVariableBuffer(ctx, var, stream, name);
  }
  return absl::OkStatus();
}

// The GPU form of TensorFlow's GetInputTensorFromVariable for a dense update:
// the variable's tensor, copied first (on `stream`) when a reader still
// holds its buffer or the variable is in copy-on-read mode, so the update
// never changes a tensor someone else sees. The variable's lock is held.
inline absl::Status GpuTensorForUpdate(OpKernelContext* ctx, int input, void* stream,
                                       Tensor* out) {
  ::tensorflow::core::RefCountPtr<::tensorflow::Var> var;
  TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
      ctx, ::tensorflow::HandleFromInput(ctx, input), &var));
  TF_RETURN_IF_ERROR(GpuPrepareDenseUpdate(ctx, var.get(), stream, VariableName(ctx, input)));
  *out = *var->tensor();
  return absl::OkStatus();
}

// Device pointer of the scalar input `name` (declared T in the op).
template <typename S>
absl::Status DeviceScalar(OpKernelContext* ctx, const char* name, const S** out) {
  const Tensor* t;
  TF_RETURN_IF_ERROR(ctx->input(name, &t));
  if (!::tensorflow::TensorShapeUtils::IsScalar(t->shape())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: '", name, "' must be a scalar, got shape ", t->shape().DebugString()));
  }
  *out = t->scalar<S>().data();
  return absl::OkStatus();
}

template <typename T, typename Algo, typename Spec>
class DenseApplyGpuOp : public OpKernel {
 public:
  using Rule = typename Algo::template Rule<ComputeType<T>>;
  static constexpr int kNumSlots = Rule::kNumSlots;
  static constexpr int kNumScalars = std::tuple_size<decltype(Spec::kScalars)>::value;
  static constexpr int kNumFlags = std::tuple_size<decltype(Spec::kFlags)>::value;
  static_assert(kNumSlots <= cuda::kMaxSlots && kNumScalars <= cuda::kMaxScalars &&
                    kNumFlags <= cuda::kMaxFlags,
                "raise the limits in cc/cuda/launch.h");
  static_assert(std::is_same_v<Rule, typename Spec::template Rule<ComputeType<T>>>,
                "the Algo and the Spec must build the same rule");

  explicit DenseApplyGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES(ctx, num_slots_ <= kNumSlots,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: at most ", kNumSlots, " slots, got ", num_slots_)));
    OP_REQUIRES_OK(ctx, algo_.CheckNumSlots(num_slots_));
    for (int i = 0; i < kNumFlags; ++i) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr(Spec::kFlags[i], &flags_[i]));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    void* stream = CudaStream(ctx);
    OP_REQUIRES(ctx, stream != nullptr,
                absl::InternalError("kerasopt: the GPU op has no CUDA stream"));
    const int grad_input = 1 + num_slots_;
    std::vector<int> variable_inputs(grad_input);
    for (int i = 0; i < grad_input; ++i) variable_inputs[i] = i;
    // The device type only matters for sparse (copy-on-read) access.
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, variable_inputs);

    std::vector<Tensor> tensors(grad_input);
    for (int i = 0; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, CheckVariableDtype<T>(ctx, i));
      OP_REQUIRES_OK(ctx, GpuTensorForUpdate(ctx, i, stream, &tensors[i]));
    }
    const Tensor& grad = ctx->input(grad_input);
    OP_REQUIRES_OK(ctx, CheckDenseShapes(ctx, tensors, grad));

    cuda::DenseArgs args{};
    args.stream = stream;
    args.n = tensors[0].NumElements();
    args.var = tensors[0].data();
    int next = 1;
    for (int k = 0; k < kNumSlots; ++k) {
      args.slots[k] = algo_.SlotPresent(k, num_slots_) ? tensors[next++].data() : nullptr;
    }
    args.grad = grad.data();
    for (int i = 0; i < kNumScalars; ++i) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, Spec::kScalars[i], &args.inputs.scalars[i]));
    }
    if (Spec::kUsesStep) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, "step", &args.inputs.step));
    }
    for (int i = 0; i < kNumFlags; ++i) args.inputs.flags[i] = flags_[i];
    args.inputs.num_slots = num_slots_;

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
          "kerasopt: ", type_string(), " on variable '", VariableName(ctx, 0),
          "' failed to launch: ", error)));
    }
  }

 private:
  Algo algo_;
  int num_slots_ = 0;
  std::array<bool, cuda::kMaxFlags> flags_{};
};

}  // namespace tf
}  // namespace kerasopt

#define KERASOPT_REGISTER_DENSE_GPU(OP_NAME, ALGO, SPEC)                        \
  KERASOPT_REGISTER_DENSE_GPU_T(OP_NAME, ALGO, SPEC, Eigen::half)              \
  KERASOPT_REGISTER_DENSE_GPU_T(OP_NAME, ALGO, SPEC, ::tensorflow::bfloat16)   \
  KERASOPT_REGISTER_DENSE_GPU_T(OP_NAME, ALGO, SPEC, float)                    \
  KERASOPT_REGISTER_DENSE_GPU_T(OP_NAME, ALGO, SPEC, double)
#define KERASOPT_REGISTER_DENSE_GPU_T(OP_NAME, ALGO, SPEC, T)                   \
  REGISTER_KERNEL_BUILDER(                                                     \
      Name(OP_NAME).Device(::tensorflow::DEVICE_GPU).TypeConstraint<T>("T"),   \
      ::kerasopt::tf::DenseApplyGpuOp<T, ALGO, ::kerasopt::cuda::SPEC>);

#else  // !KERASOPT_WITH_CUDA

#define KERASOPT_REGISTER_DENSE_GPU(OP_NAME, ALGO, SPEC)

#endif  // KERASOPT_WITH_CUDA
