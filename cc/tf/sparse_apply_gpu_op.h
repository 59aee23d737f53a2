// The GPU OpKernel of every sparse "apply" op (KerasoptSparseApply<Algo>):
// SparseApplyOp's checks beside DenseApplyGpuOp's launch. The rows a
// tf.IndexedSlices gradient names are updated by the sparse CUDA driver
// (cc/cuda/sparse_driver.cuh) on TensorFlow's stream for the op: positions
// sorted by row on the device, duplicates summed in position order, one warp
// per distinct row, so duplicates never race.
//
// Out-of-range indices: the device checks every index before anything is
// written; the op then reads the verdict back (FetchBadIndex, the one host
// sync of the path) and fails with an InvalidArgument naming the index and
// its position, as the CPU op does. Hyperparameters stay on the device.
//
// Host compiler, TensorFlow headers, no CUDA headers (see
// dense_apply_gpu_op.h). Registered after the CPU kernels with the same Algo
// and the algorithm's spec:
//   KERASOPT_REGISTER_SPARSE_GPU("KerasoptSparseApplyAdam", AdamAlgo, AdamSpec)
// Nothing is registered unless the library is built with its CUDA sources.
#pragma once

#if KERASOPT_WITH_CUDA

#include <array>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/cuda/rule_specs.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/sparse_apply_op.h"

namespace kerasopt {
namespace tf {

// The GPU form of TensorFlow's sparse variable access (EnsureSparseVariableAccess):
// the variable switches to copy-on-read mode (readers copy, so rows can be
// updated in place from then on); a buffer a reader holds at the switch is
// copied first, on `stream`. The variable's lock is held exclusively.
inline absl::Status GpuTensorForSparseUpdate(OpKernelContext* ctx, int input, void* stream,
                                             Tensor* out) {
  ::tensorflow::core::RefCountPtr<::tensorflow::Var> var;
  TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
      ctx, ::tensorflow::HandleFromInput(ctx, input), &var));
  if (!var->tensor()->IsInitialized()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kerasopt: variable '", VariableName(ctx, input), "' is not initialized"));
  }
  if (!var->copy_on_read_mode.load()) {
    if (!var->tensor()->RefCountIsOne()) {
      TF_RETURN_IF_ERROR(
          GpuCopyVariableBuffer(ctx, var.get(), stream, VariableName(ctx, input)));
    }
    var->copy_on_read_mode.store(true);
  }
  *out = *var->tensor();
  return absl::OkStatus();
}

template <typename T, typename Index, typename Algo, typename Spec>
class SparseApplyGpuOp : public OpKernel {
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
  static_assert(!Spec::kWithNorms, "sparse updates need a per-element rule");

  explicit SparseApplyGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
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
    // Exclusive locks (sparse=false): TensorFlow's own sparse access would
    // copy with a CPU functor here; GpuTensorForSparseUpdate does it on the GPU.
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, variable_inputs);

    std::vector<Tensor> tensors(grad_input);
    for (int i = 0; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, CheckVariableDtype<T>(ctx, i));
      OP_REQUIRES_OK(ctx, GpuTensorForSparseUpdate(ctx, i, stream, &tensors[i]));
    }
    const Tensor& values = ctx->input(grad_input);
    const Tensor& indices = ctx->input(grad_input + 1);
    OP_REQUIRES_OK(ctx, CheckSparseShapes(ctx, tensors, values, indices));

    const Tensor& var = tensors[0];
    cuda::SparseArgs args{};
    args.stream = stream;
    args.num_rows = var.dim_size(0);
    args.row_size = args.num_rows == 0 ? 0 : var.NumElements() / args.num_rows;
    args.var = tensors[0].data();
    int next = 1;
    for (int k = 0; k < kNumSlots; ++k) {
      args.slots[k] = algo_.SlotPresent(k, num_slots_) ? tensors[next++].data() : nullptr;
    }
    args.grad = values.data();
    args.indices = indices.data();
    args.indices_are_int64 = std::is_same_v<Index, int64_t>;
    args.num_indices = indices.NumElements();
    for (int i = 0; i < kNumScalars; ++i) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, Spec::kScalars[i], &args.inputs.scalars[i]));
    }
    if (Spec::kUsesStep) {
      OP_REQUIRES_OK(ctx, DeviceScalar(ctx, "step", &args.inputs.step));
    }
    for (int i = 0; i < kNumFlags; ++i) args.inputs.flags[i] = flags_[i];
    args.inputs.num_slots = num_slots_;
    if (args.num_indices == 0) return;

    Tensor scratch;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(
                            ::tensorflow::DT_INT8,
                            ::tensorflow::TensorShape(
                                {cuda::SparseScratchBytes(args.num_indices, args.num_rows)}),
                            &scratch));
    args.scratch = scratch.data();
    if (const char* error = cuda::LaunchSparse<Spec>(CudaDType<T>(), args)) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", type_string(), " on variable '", VariableName(ctx, 0),
          "' failed to launch: ", error)));
      return;
    }
    int64_t position = -1, index = -1;
    if (const char* error = cuda::FetchBadIndex(args, &position, &index)) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", type_string(), " on variable '", VariableName(ctx, 0),
          "' failed: ", error)));
      return;
    }
    OP_REQUIRES(ctx, position < 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", type_string(), ": index ", index, " (at position ",
                    position, " of indices) is out of range [0, ", args.num_rows,
                    ") for variable '", VariableName(ctx, 0), "' with ", args.num_rows,
                    " rows; nothing was updated")));
  }

 private:
  Algo algo_;
  int num_slots_ = 0;
  std::array<bool, cuda::kMaxFlags> flags_{};
};

}  // namespace tf
}  // namespace kerasopt

// Registers the GPU kernels of a sparse apply op for every float dtype and
// both index types (indices in device memory, as TensorFlow's GPU gathers).
#define KERASOPT_REGISTER_SPARSE_GPU(OP_NAME, ALGO, SPEC)                        \
  KERASOPT_REGISTER_SPARSE_GPU_T(OP_NAME, ALGO, SPEC, Eigen::half)              \
  KERASOPT_REGISTER_SPARSE_GPU_T(OP_NAME, ALGO, SPEC, ::tensorflow::bfloat16)   \
  KERASOPT_REGISTER_SPARSE_GPU_T(OP_NAME, ALGO, SPEC, float)                    \
  KERASOPT_REGISTER_SPARSE_GPU_T(OP_NAME, ALGO, SPEC, double)
#define KERASOPT_REGISTER_SPARSE_GPU_T(OP_NAME, ALGO, SPEC, T)                   \
  KERASOPT_REGISTER_SPARSE_GPU_TI(OP_NAME, ALGO, SPEC, T, int32_t)              \
  KERASOPT_REGISTER_SPARSE_GPU_TI(OP_NAME, ALGO, SPEC, T, int64_t)
#define KERASOPT_REGISTER_SPARSE_GPU_TI(OP_NAME, ALGO, SPEC, T, INDEX)           \
  REGISTER_KERNEL_BUILDER(Name(OP_NAME)                                         \
                              .Device(::tensorflow::DEVICE_GPU)                 \
                              .TypeConstraint<T>("T")                           \
                              .TypeConstraint<INDEX>("Tindices"),               \
                          ::kerasopt::tf::SparseApplyGpuOp<T, INDEX, ALGO,      \
                                                           ::kerasopt::cuda::SPEC>);

#else  // !KERASOPT_WITH_CUDA

#define KERASOPT_REGISTER_SPARSE_GPU(OP_NAME, ALGO, SPEC)

#endif  // KERASOPT_WITH_CUDA
