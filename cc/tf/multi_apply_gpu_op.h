// The GPU OpKernel of every multi-tensor "apply" op (KerasoptMultiApply<Algo>):
// MultiApplyOp's inputs, locking and checks (see multi_apply_op.h), then the
// multi-tensor CUDA driver (cc/cuda/multi_driver.cuh): every variable cut into
// chunks, a few launches for the whole list, pointer tables passed by value,
// on TensorFlow's stream for the op. Hyperparameters stay on the device.
//
// Resource inputs (the `vars` list and the packed `slots` tensor) are
// DT_RESOURCE, which TensorFlow always keeps in host memory, also for GPU
// kernels (DataTypeAlwaysOnHost): the handles are read on the host, the
// variables' buffers are device memory. The packed slots of GPU variables
// come from KerasoptPackHandles (pack_handles_op.cc), which has a GPU kernel,
// so the packed tensor sits with the variables and the placer keeps the whole
// update on their GPU.
//
// Rules with per-variable norms (LAMB): the multi-tensor chunk table has no
// per-variable reduction yet, so the op runs the dense two-pass GPU launcher
// (deterministic chunked norms) once per variable, still in this one op.
//
// Host compiler, TensorFlow headers, no CUDA headers. Registered after the CPU
// kernels with the same Algo and the algorithm's spec:
//   KERASOPT_REGISTER_MULTI_GPU("KerasoptMultiApplyAdam", AdamAlgo, AdamSpec)
// Nothing is registered unless the library is built with its CUDA sources.
#pragma once

#if KERASOPT_WITH_CUDA

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/cuda/rule_specs.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo, typename Spec>
class MultiApplyGpuOp : public OpKernel {
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

  explicit MultiApplyGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &num_vars_));
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
    const Tensor& slot_handles = ctx->input(num_vars_);
    OP_REQUIRES(ctx, slot_handles.dims() == 1 &&
                         slot_handles.NumElements() == int64_t{num_vars_} * num_slots_,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", num_vars_, " variables with ", num_slots_,
                    " slots each need a 1-D tensor of ", num_vars_ * num_slots_,
                    " slot handles, got shape ", slot_handles.shape().DebugString())));
    const auto slot_flat = slot_handles.flat<::tensorflow::ResourceHandle>();
    const int num_resources = num_vars_ * (1 + num_slots_);
    // Resource r: r < N is vars[r]; else element r - N of the slot handles.
    auto handle = [&](int r) -> const ::tensorflow::ResourceHandle& {
      return r < num_vars_ ? ::tensorflow::HandleFromInput(ctx, r) : slot_flat(r - num_vars_);
    };
    auto name = [&](int r) { return handle(r).name(); };
    std::vector<::tensorflow::core::RefCountPtr<::tensorflow::Var>> vars(num_resources);
    for (int r = 0; r < num_resources; ++r) {
      OP_REQUIRES_OK(ctx, ::tensorflow::LookupResource(ctx, handle(r), &vars[r]));
    }
    // Every mutex once, in address order (as the CPU op).
    std::vector<::tensorflow::mutex*> mutexes(num_resources);
    for (int r = 0; r < num_resources; ++r) mutexes[r] = vars[r]->mu();
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    std::vector<::tensorflow::mutex_lock> locks;
    locks.reserve(mutexes.size());
    for (auto* mu : mutexes) locks.emplace_back(*mu);

    constexpr auto want = ::tensorflow::DataTypeToEnum<T>::value;
    std::vector<Tensor> tensors(num_resources);
    for (int r = 0; r < num_resources; ++r) {
      ::tensorflow::Var* v = vars[r].get();
      OP_REQUIRES(ctx, v->tensor()->dtype() == want,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name(r), "' has dtype ",
                      ::tensorflow::DataTypeString(v->tensor()->dtype()),
                      " but the update was given dtype ", ::tensorflow::DataTypeString(want))));
      OP_REQUIRES_OK(ctx, GpuPrepareDenseUpdate(ctx, v, stream, name(r)));
      tensors[r] = *v->tensor();
    }

    const int first_grad = num_vars_ + 1;
    std::vector<cuda::TensorPointers> pointers(num_vars_);
    for (int i = 0; i < num_vars_; ++i) {
      const Tensor& var = tensors[i];
      const Tensor& grad = ctx->input(first_grad + i);
      OP_REQUIRES(ctx, var.shape() == grad.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name(i), "' has shape ",
                      var.shape().DebugString(), " but its gradient has shape ",
                      grad.shape().DebugString())));
      cuda::TensorPointers& p = pointers[i];
      p.n = var.NumElements();
      p.var = tensors[i].data();
      p.grad = grad.data();
      int next = num_vars_ + i * num_slots_;
      for (int k = 0; k < kNumSlots; ++k) {
        if (!algo_.SlotPresent(k, num_slots_)) {
          p.slots[k] = nullptr;
          continue;
        }
        const Tensor& slot = tensors[next];
        OP_REQUIRES(ctx, slot.shape() == var.shape(),
                    absl::InvalidArgumentError(absl::StrCat(
                        "kerasopt: variable '", name(i), "' has shape ",
                        var.shape().DebugString(), " but its slot '", name(next),
                        "' has shape ", slot.shape().DebugString())));
        p.slots[k] = tensors[next++].data();
      }
    }

    cuda::RuleInputs inputs{};
    for (int i = 0; i < kNumScalars; ++i) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, Spec::kScalars[i], &inputs.scalars[i]));
    }
    if (Spec::kUsesStep) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, "step", &inputs.step));
    }
    for (int i = 0; i < kNumFlags; ++i) inputs.flags[i] = flags_[i];
    inputs.num_slots = num_slots_;

    const char* error = nullptr;
    int failed = 0;  // the variable named in the error
    if constexpr (Spec::kWithNorms) {
      OP_REQUIRES_OK(ctx, LaunchEach(ctx, stream, pointers, inputs, &error, &failed));
    } else {
      cuda::MultiArgs args{};
      args.stream = stream;
      args.num_tensors = num_vars_;
      args.tensors = pointers.data();
      args.inputs = inputs;
      error = cuda::LaunchMultiDense<Spec>(CudaDType<T>(), args);
    }
    if (error != nullptr) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", type_string(), " on ", num_vars_, " variables (from '", name(failed),
          "') failed to launch: ", error)));
    }
  }

 private:
  // One dense launch per variable, sharing one scratch buffer sized for the
  // largest: the launches queue on one stream, so they never overlap.
  absl::Status LaunchEach(OpKernelContext* ctx, void* stream,
                          const std::vector<cuda::TensorPointers>& pointers,
                          const cuda::RuleInputs& inputs, const char** error, int* failed) {
    constexpr cuda::DType dtype = CudaDType<T>();
    int64_t scratch_bytes = 0;
    for (const auto& p : pointers) {
      scratch_bytes = std::max(scratch_bytes, cuda::DenseScratchBytes<Spec>(dtype, p.n));
    }
    Tensor scratch;
    if (scratch_bytes > 0) {
      TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DT_INT8,
                                            ::tensorflow::TensorShape({scratch_bytes}),
                                            &scratch));
    }
    for (int i = 0; i < num_vars_; ++i) {
      const auto& p = pointers[i];
      if (p.n == 0) continue;
      cuda::DenseArgs args{};
      args.stream = stream;
      args.n = p.n;
      args.var = p.var;
      for (int k = 0; k < cuda::kMaxSlots; ++k) args.slots[k] = p.slots[k];
      args.grad = p.grad;
      args.scratch = scratch_bytes > 0 ? scratch.data() : nullptr;
      args.inputs = inputs;
      if ((*error = cuda::LaunchDense<Spec>(dtype, args)) != nullptr) {
        *failed = i;
        break;
      }
    }
    return absl::OkStatus();
  }

  Algo algo_;
  int num_vars_ = 0;
  int num_slots_ = 0;
  std::array<bool, cuda::kMaxFlags> flags_{};
};

}  // namespace tf
}  // namespace kerasopt

// Registers the GPU kernels of a multi-tensor op for every float dtype.
#define KERASOPT_REGISTER_MULTI_GPU(OP_NAME, ALGO, SPEC)                        \
  KERASOPT_REGISTER_MULTI_GPU_T(OP_NAME, ALGO, SPEC, Eigen::half)              \
  KERASOPT_REGISTER_MULTI_GPU_T(OP_NAME, ALGO, SPEC, ::tensorflow::bfloat16)   \
  KERASOPT_REGISTER_MULTI_GPU_T(OP_NAME, ALGO, SPEC, float)                    \
  KERASOPT_REGISTER_MULTI_GPU_T(OP_NAME, ALGO, SPEC, double)
#define KERASOPT_REGISTER_MULTI_GPU_T(OP_NAME, ALGO, SPEC, T)                   \
  REGISTER_KERNEL_BUILDER(                                                     \
      Name(OP_NAME).Device(::tensorflow::DEVICE_GPU).TypeConstraint<T>("T"),   \
      ::kerasopt::tf::MultiApplyGpuOp<T, ALGO, ::kerasopt::cuda::SPEC>);

#else  // !KERASOPT_WITH_CUDA

#define KERASOPT_REGISTER_MULTI_GPU(OP_NAME, ALGO, SPEC)

#endif  // KERASOPT_WITH_CUDA
