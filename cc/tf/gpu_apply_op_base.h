// What the GPU OpKernels (dense_apply_gpu_op.h, sparse_apply_gpu_op.h,
// multi_apply_gpu_op.h) share: the op's CUDA stream, TensorFlow's
// copy-before-update rules done with a device copy, the device pointers of the
// scalar inputs, and GpuApplyOpBase, which reads the attrs every apply op has
// (num_slots and the rule's flags) and gathers the rule's inputs.
//
// Host compiler, TensorFlow headers, no CUDA headers: the kernels hand the
// launchers (cc/cuda/launch.h) raw device pointers, and the stream as the
// void* that StreamExecutor's platform_specific_handle() gives. The op's
// scalar inputs stay on the device (no HostMemory): the launcher builds the
// rule there, so an update never waits for the device.
#pragma once

#if KERASOPT_WITH_CUDA

#include <array>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/kernels/declaration.h"
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

// The tensor for a row (sparse) update, as the CPU's TensorForRowUpdate
// (sparse_apply_op.h): the variable stays in TensorFlow's copy-on-write
// protocol, so its readers never copy the whole table; its buffer is copied
// first (on `stream`) only while a reader still holds it, and a variable in
// copy-on-read mode (put there by another op) is updated in place, as
// TensorFlow's sparse ops do. The mode is never changed. The variable's lock
// is held exclusively.
inline absl::Status GpuTensorForRowUpdate(OpKernelContext* ctx, int input, void* stream,
                                          Tensor* out) {
  ::tensorflow::core::RefCountPtr<::tensorflow::Var> var;
  TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
      ctx, ::tensorflow::HandleFromInput(ctx, input), &var));
  if (!var->tensor()->IsInitialized()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kerasopt: variable '", VariableName(ctx, input), "' is not initialized"));
  }
  if (!var->tensor()->RefCountIsOne()) {
    TF_RETURN_IF_ERROR(GpuCopyVariableBuffer(ctx, var.get(), stream, VariableName(ctx, input)));
  }
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

// The attrs and rule inputs of a GPU apply op for a declared rule: `Algo` is
// the CPU op's RuleAlgo (rule_algo.h: attrs, slot checks, which rule slot
// each resource fills), `Spec` the rule's declaration (cc/kernels/
// declaration.h: the inputs that build the rule on the device).
template <typename T, typename Algo, typename Spec>
class GpuApplyOpBase : public OpKernel {
 public:
  using Rule = typename Algo::template Rule<ComputeType<T>>;
  static constexpr int kNumSlots = Rule::kNumSlots;
  static constexpr int kNumScalars = kerasopt::kNumScalars<Spec>;
  static constexpr int kNumFlags = kerasopt::kNumFlags<Spec>;
  static_assert(kNumSlots <= cuda::kMaxSlots && kNumScalars <= cuda::kMaxScalars &&
                    kNumFlags <= cuda::kMaxFlags,
                "raise the limits in cc/cuda/launch.h");

  explicit GpuApplyOpBase(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES(ctx, num_slots_ <= kNumSlots,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: at most ", kNumSlots, " slots, got ", num_slots_)));
    OP_REQUIRES_OK(ctx, algo_.CheckNumSlots(num_slots_));
    // The step's features (cc/kernels/step_features.h) run on the CPU kernels
    // only; kerasopt keeps Keras's own passes for variables on a GPU.
    OP_REQUIRES(ctx, !algo_.with_average(),
                absl::UnimplementedError(absl::StrCat(
                    "kerasopt: ", type_string(), " on a GPU takes no EMA slot (with_average)")));
    OP_REQUIRES(ctx, !algo_.accumulates(),
                absl::UnimplementedError(absl::StrCat(
                    "kerasopt: ", type_string(),
                    " on a GPU takes no gradient accumulator (accumulation_steps)")));
  }

 protected:
  // The op's CUDA stream; an error if it has none.
  static absl::Status Stream(OpKernelContext* ctx, void** stream) {
    *stream = CudaStream(ctx);
    if (*stream == nullptr) return absl::InternalError("kerasopt: the GPU op has no CUDA stream");
    return absl::OkStatus();
  }

  // Locks the variable and its passed slots (inputs 0..num_slots, in address
  // order, exclusively) and gives their tensors, checked to hold T and made
  // safe to update in place: for a dense update as TensorFlow's
  // GetInputTensorFromVariable, for a sparse one as GpuTensorForRowUpdate
  // (copy-on-write, never copy-on-read mode), with any copy made on the device.
  absl::Status LockedVariableTensors(OpKernelContext* ctx, void* stream, bool sparse,
                                     std::optional<::tensorflow::VariableInputLockHolder>* locks,
                                     std::vector<Tensor>* tensors) const {
    const int num_inputs = 1 + num_slots_;
    std::vector<int> variable_inputs(num_inputs);
    for (int i = 0; i < num_inputs; ++i) variable_inputs[i] = i;
    locks->emplace(::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, variable_inputs));
    tensors->resize(num_inputs);
    for (int i = 0; i < num_inputs; ++i) {
      TF_RETURN_IF_ERROR(CheckVariableDtype<T>(ctx, i));
      TF_RETURN_IF_ERROR(sparse ? GpuTensorForRowUpdate(ctx, i, stream, &(*tensors)[i])
                                : GpuTensorForUpdate(ctx, i, stream, &(*tensors)[i]));
    }
    return absl::OkStatus();
  }

  // Device pointers of the scalar inputs and step, and the attrs.
  absl::Status ReadRuleInputs(OpKernelContext* ctx, cuda::RuleInputs* inputs) const {
    const Tensor* features;
    if (ctx->input("features", &features).ok() && features->NumElements() != 0) {
      return absl::UnimplementedError(absl::StrCat(
          "kerasopt: ", type_string(), " on a GPU takes no step features (clipping, weight "
          "decay, EMA: Keras's own passes run for GPU variables)"));
    }
    TF_RETURN_IF_ERROR(DeviceScalar(ctx, "learning_rate", &inputs->learning_rate));
    TF_RETURN_IF_ERROR(DeviceScalar(ctx, "step", &inputs->step));
    for (int i = 0; i < kNumScalars; ++i) {
      TF_RETURN_IF_ERROR(DeviceScalar(ctx, Spec::kScalars[i], &inputs->scalars[i]));
    }
    for (int i = 0; i < kNumFlags; ++i) inputs->flags[i] = algo_.flags()[i];
    inputs->num_slots = num_slots_;
    inputs->optional_slot = algo_.OptionalSlotPassed(num_slots_);
    return absl::OkStatus();
  }

  // Fills the rule's slot pointers from the passed slot tensors, in order;
  // slots the op was not given are nullptr.
  void SlotPointers(const Tensor* passed, void* (&slots)[cuda::kMaxSlots]) const {
    int next = 0;
    for (int k = 0; k < kNumSlots; ++k) {
      slots[k] = algo_.SlotPresent(k, num_slots_) ? passed[next++].data() : nullptr;
    }
  }

  Algo algo_;
  int num_slots_ = 0;
};

}  // namespace tf
}  // namespace kerasopt

#endif  // KERASOPT_WITH_CUDA
