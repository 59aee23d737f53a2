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
// gpu_apply_op_base.h). Registered by rule_ops.h with the same Algo as the
// CPU kernel and the rule's declaration, when the library is built with its
// CUDA sources.
#pragma once

#if KERASOPT_WITH_CUDA

#include <optional>
#include <type_traits>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/tf/gpu_apply_op_base.h"
#include "cc/tf/sparse_apply_op.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Index, typename Algo, typename Spec>
class SparseApplyGpuOp : public GpuApplyOpBase<T, Algo, Spec> {
 public:
  using Base = GpuApplyOpBase<T, Algo, Spec>;
  using Base::Base;
  static_assert(Spec::kDriver == Driver::kElementwise, "sparse updates need a per-element rule");

  void Compute(OpKernelContext* ctx) override {
    void* stream;
    OP_REQUIRES_OK(ctx, this->Stream(ctx, &stream));
    std::optional<::tensorflow::VariableInputLockHolder> locks;
    std::vector<Tensor> tensors;
    OP_REQUIRES_OK(ctx, this->LockedVariableTensors(ctx, stream, /*sparse=*/true, &locks,
                                                    &tensors));
    const int grad_input = 1 + this->num_slots_;
    const Tensor& values = ctx->input(grad_input);
    const Tensor& indices = ctx->input(grad_input + 1);
    OP_REQUIRES_OK(ctx, CheckSparseShapes(ctx, tensors, values, indices));

    const Tensor& var = tensors[0];
    cuda::SparseArgs args{};
    args.stream = stream;
    args.num_rows = var.dim_size(0);
    args.row_size = args.num_rows == 0 ? 0 : var.NumElements() / args.num_rows;
    args.var = tensors[0].data();
    this->SlotPointers(tensors.data() + 1, args.slots);
    args.grad = values.data();
    args.indices = indices.data();
    args.indices_are_int64 = std::is_same_v<Index, int64_t>;
    args.num_indices = indices.NumElements();
    OP_REQUIRES_OK(ctx, this->ReadRuleInputs(ctx, &args.inputs));
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
          "kerasopt: ", this->type_string(), " on variable '", VariableName(ctx, 0),
          "' failed to launch: ", error)));
      return;
    }
    int64_t position = -1, index = -1;
    if (const char* error = cuda::FetchBadIndex(args, &position, &index)) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", this->type_string(), " on variable '", VariableName(ctx, 0),
          "' failed: ", error)));
      return;
    }
    OP_REQUIRES(ctx, position < 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", this->type_string(), ": index ", index, " (at position ",
                    position, " of indices) is out of range [0, ", args.num_rows,
                    ") for variable '", VariableName(ctx, 0), "' with ", args.num_rows,
                    " rows; nothing was updated")));
  }
};

}  // namespace tf
}  // namespace kerasopt

#endif  // KERASOPT_WITH_CUDA
