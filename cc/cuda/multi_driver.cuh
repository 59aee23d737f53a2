// Runs a per-element rule over a LIST of variables on the GPU (nvcc only):
// the device side of the KerasoptMultiApply<Algo> ops (see LaunchMultiDense in
// cc/cuda/launch.h).
//
// The host cuts every variable into chunks of kMultiChunk elements, counted
// from its element 0, and packs up to kMultiBatchTensors variables and
// kMultiBatchChunks chunks into one MultiBatch, passed to the kernel by value
// (under the 4 KB kernel-parameter limit of every CUDA version). Block b runs
// chunk b with ApplyRange, the per-element loop of the dense driver, after
// building the rule for its variable (AdamW's rule depends on the variable's
// size). So 1000 small variables cost a handful of launches instead of 1000,
// and the results are those of LaunchDense per variable.
//
// Instantiated per declared rule next to its dense launcher
// (rule_launchers.cu.cc.in).
#pragma once

#include <cstdint>

#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/device_util.cuh"
#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

struct MultiBatch {
  TensorPointers tensors[kMultiBatchTensors];
  bool aligned[kMultiBatchTensors];      // every pointer 16-byte aligned
  uint8_t chunk_tensor[kMultiBatchChunks];  // chunk -> index into tensors
  int32_t chunk_index[kMultiBatchChunks];   // chunk -> chunk of its variable
  int num_chunks;
};
static_assert(sizeof(MultiBatch) + sizeof(RuleInputs) < 4000, "kernel parameters over 4 KB");
static_assert(kMultiBatchTensors <= 256, "chunk_tensor is a uint8_t");

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) MultiDenseKernel(const MultiBatch batch,
                                                             const RuleInputs inputs) {
  using Rule = typename Spec::template Rule<typename S::C>;
  constexpr int kVec = 16 / sizeof(typename S::Bits);
  const TensorPointers& t = batch.tensors[batch.chunk_tensor[blockIdx.x]];
  Rule rule;
  if (!BlockRule<Spec, typename S::C>(inputs, t.n, &rule)) return;
  const int64_t begin = static_cast<int64_t>(batch.chunk_index[blockIdx.x]) * kMultiChunk;
  const int64_t end = begin + kMultiChunk < t.n ? begin + kMultiChunk : t.n;
  if (batch.aligned[batch.chunk_tensor[blockIdx.x]]) {
    ApplyRange<S, kVec>(rule, t.var, t.slots, t.grad, begin, end, threadIdx.x, blockDim.x);
  } else {
    ApplyRange<S, 1>(rule, t.var, t.slots, t.grad, begin, end, threadIdx.x, blockDim.x);
  }
}

template <typename Spec, typename S>
const char* RunMultiDense(const MultiArgs& args) {
  static_assert(Spec::kDriver == Driver::kElementwise,
                "multi-tensor rules with norms are not implemented");
  constexpr int K = Spec::template Rule<typename S::C>::kNumSlots;
  const auto stream = static_cast<cudaStream_t>(args.stream);
  MultiBatch batch{};
  int batch_tensors = 0;
  auto flush = [&]() -> const char* {
    if (batch.num_chunks > 0) {
      MultiDenseKernel<Spec, S><<<batch.num_chunks, kThreads, 0, stream>>>(batch, args.inputs);
      if (const char* error = LaunchStatus()) return error;
    }
    batch.num_chunks = 0;
    batch_tensors = 0;
    return nullptr;
  };
  for (int i = 0; i < args.num_tensors; ++i) {
    const TensorPointers& t = args.tensors[i];
    if (t.n == 0) continue;
    if (batch_tensors == kMultiBatchTensors) {
      if (const char* error = flush()) return error;
    }
    const int slot = batch_tensors++;
    batch.tensors[slot] = t;
    bool aligned = Aligned16(t.var) && Aligned16(t.grad);
    for (int k = 0; k < K; ++k) aligned = aligned && Aligned16(t.slots[k]);
    batch.aligned[slot] = aligned;
    const int64_t chunks = (t.n + kMultiChunk - 1) / kMultiChunk;
    for (int64_t c = 0; c < chunks; ++c) {
      if (batch.num_chunks == kMultiBatchChunks) {
        // Start a new batch that holds this variable (again) for its remaining chunks.
        if (const char* error = flush()) return error;
        batch.tensors[0] = t;
        batch.aligned[0] = aligned;
        batch_tensors = 1;
      }
      batch.chunk_tensor[batch.num_chunks] = static_cast<uint8_t>(batch_tensors - 1);
      batch.chunk_index[batch.num_chunks] = static_cast<int32_t>(c);
      ++batch.num_chunks;
    }
  }
  return flush();
}

template <typename Spec>
const char* LaunchMultiDense(DType dtype, const MultiArgs& args) {
  if constexpr (Spec::kDriver != Driver::kElementwise) {
    // (The multi-tensor op runs rules with norms by LaunchDense per variable.)
    return "kerasopt: no multi-tensor launcher for rules with norms";
  } else {
    return DispatchDType(dtype, [&](auto storage) -> const char* {
      return RunMultiDense<Spec, decltype(storage)>(args);
    });
  }
}

}  // namespace cuda
}  // namespace kerasopt
