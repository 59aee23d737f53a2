// Runs a rule whose per-variable value comes from norms of inputs it does not
// change (LARS: ||w||, ||g||; NovoGrad: ||g||) over a dense variable on the GPU
// (nvcc only): the GPU counterpart of cc/cpu/apply_norms_then_dense.h, with
// the same Stage (cc/kernels/norm_stages.h). Three kernels on the op's stream:
//
//   pass 1  per element: Stage::Terms(w, g); per chunk of kNormChunk elements,
//           sums of squares in double (cc/cuda/chunk_sums.cuh) -> partials;
//           skipped when the rule needs no norms (the sums are then 0);
//   finish  one block: the chunks' sums, then Stage::Finish with the layer
//           slots (NovoGrad's v: read and written here, by one thread) ->
//           the bound rule, in scratch;
//   pass 2  the bound rule over the weight and its other slots: the dense
//           driver's vectorized loop (dense_driver.cuh's ApplyRange).
//
// Pass 1 writes nothing, so pass 2 updates the weight and its slots in one go.
// Scratch: NormScratch's partials and finish area (no carried term).
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "cc/cuda/chunk_sums.cuh"
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/device_util.cuh"
#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

template <typename Spec, typename S>
struct InputNorms {
  using C = typename S::C;
  using Rule = typename Spec::template Rule<C>;
  using Stage = InputNormsStage<Spec, Rule>;
  static constexpr int kNorms = Stage::kNumNorms;
  using DenseRule =
      decltype(Stage::Finish(Rule{}, std::array<double, kNorms>{}, static_cast<C*>(nullptr)));
  static_assert(sizeof(DenseRule) + 16 <= NormScratch<Spec>::FinishBytes(),
                "the bound rule does not fit the finish area");

  // Where the kernels keep their results in the op's scratch.
  struct Layout {
    double* partials;  // [chunk][norm]
    int* ok;           // 1 when the inputs were accepted
    DenseRule* rule;   // the bound rule of pass 2

    __device__ Layout(void* scratch, int64_t n) {
      char* base = static_cast<char*>(scratch);
      const int64_t partials_bytes = NormScratch<Spec>::PartialsBytes(n, kNorms);
      partials = reinterpret_cast<double*>(base);
      ok = reinterpret_cast<int*>(base + partials_bytes);
      rule = reinterpret_cast<DenseRule*>(base + partials_bytes + 16);
    }
  };
};

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) InputNormsPass1Kernel(const DenseArgs args) {
  using N = InputNorms<Spec, S>;
  using C = typename S::C;
  using Bits = typename S::Bits;
  using Stage = typename N::Stage;
  constexpr int kNorms = N::kNorms;
  __shared__ double tree[kNorms][kThreads];

  typename N::Rule rule;
  if (!BlockRule<Spec, C>(args.inputs, args.n, &rule) || !Stage::NeedsNorms(rule)) return;
  const typename N::Layout layout(args.scratch, args.n);
  const Bits* var = static_cast<const Bits*>(args.var);
  const Bits* grad = static_cast<const Bits*>(args.grad);
  const int64_t num_chunks = NormScratch<Spec>::NumChunks(args.n);
  for (int64_t c = blockIdx.x; c < num_chunks; c += gridDim.x) {
    double pair[kNorms] = {};
    for (int half = 0; half < 2; ++half) {
      const int64_t i = c * kNormChunk + half * kThreads + threadIdx.x;
      if (i >= args.n) continue;
      C t[kNorms];
      Stage::Terms(rule, Stage::kReadsWeight ? S::Load(var[i]) : C(0), S::Load(grad[i]), t);
      for (int k = 0; k < kNorms; ++k) {
        const double x = static_cast<double>(t[k]);
        pair[k] = pair[k] + x * x;
      }
    }
    ChunkSums<kNorms>(pair, tree, layout.partials + c * kNorms);
  }
}

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) InputNormsFinishKernel(const DenseArgs args) {
  using N = InputNorms<Spec, S>;
  using C = typename S::C;
  using Bits = typename S::Bits;
  using Stage = typename N::Stage;
  constexpr int kNorms = N::kNorms;
  constexpr int kLayer = Stage::kNumLayerSlots;
  constexpr int kDense = Stage::kNumDenseSlots;
  __shared__ double tree[kNorms][kThreads];

  const typename N::Layout layout(args.scratch, args.n);
  typename N::Rule rule;
  if (!BlockRule<Spec, C>(args.inputs, args.n, &rule)) {
    if (threadIdx.x == 0) *layout.ok = 0;
    return;
  }
  std::array<double, kNorms> sums{};
  if (Stage::NeedsNorms(rule)) {
    sums = SumChunkPartials<kNorms>(layout.partials, NormScratch<Spec>::NumChunks(args.n), tree);
  }
  if (threadIdx.x == 0) {
    C layer[kLayer > 0 ? kLayer : 1];
    // An absent layer slot (its flag off: nullptr) reads as 0 and is not written.
    for (int k = 0; k < kLayer; ++k) {
      const Bits* slot = static_cast<const Bits*>(args.slots[kDense + k]);
      layer[k] = slot != nullptr ? S::Load(*slot) : C(0);
    }
    *layout.rule = Stage::Finish(rule, sums, layer);
    for (int k = 0; k < kLayer; ++k) {
      if (args.slots[kDense + k] != nullptr) {
        *static_cast<Bits*>(args.slots[kDense + k]) = S::Store(layer[k]);
      }
    }
    *layout.ok = 1;
  }
}

template <typename Spec, typename S, int kVec>
__global__ void __launch_bounds__(kThreads) InputNormsPass2Kernel(const DenseArgs args) {
  using N = InputNorms<Spec, S>;
  const typename N::Layout layout(args.scratch, args.n);
  if (*layout.ok == 0) return;
  const typename N::DenseRule rule = *layout.rule;
  ApplyRange<S, kVec>(rule, args.var, args.slots, args.grad, 0, args.n,
                      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
                      static_cast<int64_t>(gridDim.x) * blockDim.x);
}

// Declared in dense_driver.cuh, whose LaunchDense calls it for rules with kInputNorms.
template <typename Spec, typename S>
const char* RunInputNorms(const DenseArgs& args) {
  using N = InputNorms<Spec, S>;
  constexpr int kVec = 16 / sizeof(typename S::Bits);
  const auto stream = static_cast<cudaStream_t>(args.stream);
  const int64_t num_chunks = NormScratch<Spec>::NumChunks(args.n);
  InputNormsPass1Kernel<Spec, S><<<GridSize(num_chunks * kThreads), kThreads, 0, stream>>>(args);
  InputNormsFinishKernel<Spec, S><<<1, kThreads, 0, stream>>>(args);
  bool aligned = Aligned16(args.var) && Aligned16(args.grad);
  for (int k = 0; k < N::Stage::kNumDenseSlots; ++k) aligned = aligned && Aligned16(args.slots[k]);
  if (aligned) {
    InputNormsPass2Kernel<Spec, S, kVec><<<GridSize(args.n / kVec), kThreads, 0, stream>>>(args);
  } else {
    InputNormsPass2Kernel<Spec, S, 1><<<GridSize(args.n), kThreads, 0, stream>>>(args);
  }
  return LaunchStatus();
}

}  // namespace cuda
}  // namespace kerasopt
