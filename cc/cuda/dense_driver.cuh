// Runs a rule over a dense variable on the GPU (nvcc only); the GPU
// counterpart of cc/cpu/apply_dense.h and cc/cpu/apply_with_norms.h (the
// counterpart of cc/cpu/apply_norms_then_dense.h is input_norms_driver.cuh).
//
// Per-element rules: one grid-stride kernel. Each thread loads 16 bytes of
// the weight, the gradient and every present slot at a time (8 half/bfloat16,
// 4 float or 2 double elements) when all of them are 16-byte aligned (they
// are for TensorFlow's allocations), widens them to the compute type, runs
// the rule and narrows the results back. Absent slots are zeros that are
// never written, as on the CPU.
//
// Rules with per-variable norms (LAMB): three kernels on the op's stream.
//   pass 1  per element: Update (slots) and NormTerms; per chunk of kNormChunk
//           elements, sums of squares in double by the CPU's fixed halving
//           tree (apply_with_norms.h) -> partials[chunk][norm];
//   finish  one block: sums over the chunks (a fixed strided order and tree),
//           then rule.Finish(sums) -> the step scalar, in scratch;
//   pass 2  per element: Apply(w, term, step).
// Chunks and reduction order do not depend on the grid, so the result is the
// same bits on every run and every GPU.
//
// The launchers are instantiated per declared rule (cc/kernels/declaration.h)
// in its generated cc/cuda/rule_launchers.cu.cc.in.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "cc/cuda/chunk_sums.cuh"
#include "cc/cuda/device_util.cuh"
#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

template <typename Bits, int N>
struct alignas(sizeof(Bits) * N) Pack {
  Bits v[N];
};

// --- per-element rules -------------------------------------------------------

// Runs `rule` over elements [begin, end) of one variable (begin a multiple of
// kVec, every pointer 16-byte aligned when kVec > 1): thread `first` of
// `stride` threads takes packs first, first + stride, ...
template <typename S, int kVec, typename Rule>
__device__ __forceinline__ void ApplyRange(const Rule& rule, void* var_ptr,
                                           void* const* slot_ptrs, const void* grad_ptr,
                                           int64_t begin, int64_t end, int64_t first,
                                           int64_t stride) {
  using C = typename S::C;
  using Bits = typename S::Bits;
  constexpr int K = Rule::kNumSlots;
  using P = Pack<Bits, kVec>;
  Bits* var = static_cast<Bits*>(var_ptr) + begin;
  const Bits* grad = static_cast<const Bits*>(grad_ptr) + begin;
  Bits* slots[K];
  for (int k = 0; k < K; ++k) {
    slots[k] = slot_ptrs[k] != nullptr ? static_cast<Bits*>(slot_ptrs[k]) + begin : nullptr;
  }
  const int64_t n = end - begin;
  const int64_t num_packs = n / kVec;
  for (int64_t p = first; p < num_packs; p += stride) {
    P w = reinterpret_cast<const P*>(var)[p];
    const P g = reinterpret_cast<const P*>(grad)[p];
    P s[K];
    for (int k = 0; k < K; ++k) {
      if (slots[k] != nullptr) s[k] = reinterpret_cast<const P*>(slots[k])[p];
    }
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      C wc = S::Load(w.v[j]);
      C sc[K];
      for (int k = 0; k < K; ++k) sc[k] = slots[k] != nullptr ? S::Load(s[k].v[j]) : C(0);
      RunRule(rule, wc, sc, S::Load(g.v[j]), std::make_index_sequence<K>());
      w.v[j] = S::Store(wc);
      for (int k = 0; k < K; ++k) s[k].v[j] = S::Store(sc[k]);
    }
    reinterpret_cast<P*>(var)[p] = w;
    for (int k = 0; k < K; ++k) {
      if (slots[k] != nullptr) reinterpret_cast<P*>(slots[k])[p] = s[k];
    }
  }
  // The last n % kVec elements, one per thread.
  const int64_t i = num_packs * kVec + first;
  if (i < n) {
    C wc = S::Load(var[i]);
    C sc[K];
    for (int k = 0; k < K; ++k) sc[k] = slots[k] != nullptr ? S::Load(slots[k][i]) : C(0);
    RunRule(rule, wc, sc, S::Load(grad[i]), std::make_index_sequence<K>());
    var[i] = S::Store(wc);
    for (int k = 0; k < K; ++k) {
      if (slots[k] != nullptr) slots[k][i] = S::Store(sc[k]);
    }
  }
}

template <typename Spec, typename S, int kVec>
__global__ void __launch_bounds__(kThreads) DenseKernel(const DenseArgs args) {
  using Rule = typename Spec::template Rule<typename S::C>;
  Rule rule;
  if (!BlockRule<Spec, typename S::C>(args.inputs, args.n, &rule)) return;
  ApplyRange<S, kVec>(rule, args.var, args.slots, args.grad, 0, args.n,
                      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
                      static_cast<int64_t>(gridDim.x) * blockDim.x);
}

template <typename Spec, typename S>
const char* RunDense(const DenseArgs& args) {
  using Bits = typename S::Bits;
  constexpr int K = Spec::template Rule<typename S::C>::kNumSlots;
  static_assert(K <= kMaxSlots, "raise kMaxSlots");
  constexpr int kVec = 16 / sizeof(Bits);
  bool aligned = Aligned16(args.var) && Aligned16(args.grad);
  for (int k = 0; k < K; ++k) aligned = aligned && Aligned16(args.slots[k]);
  const auto stream = static_cast<cudaStream_t>(args.stream);
  if (aligned) {
    DenseKernel<Spec, S, kVec><<<GridSize(args.n / kVec), kThreads, 0, stream>>>(args);
  } else {
    DenseKernel<Spec, S, 1><<<GridSize(args.n), kThreads, 0, stream>>>(args);
  }
  return LaunchStatus();
}

// --- rules with per-variable norms --------------------------------------------

template <typename Rule, typename C, std::size_t... I>
__device__ __forceinline__ void UpdateSlots(const Rule& rule, C w, C* s, C g,
                                            std::index_sequence<I...>) {
  rule.Update(w, s[I]..., g);
}
template <typename Rule, typename C, std::size_t... I>
__device__ __forceinline__ void NormTerms(const Rule& rule, C w, const C* s, C* t,
                                          std::index_sequence<I...>) {
  rule.NormTerms(w, s[I]..., t);
}

// Where pass 1, finish and pass 2 keep their results in the op's scratch.
template <typename Spec, typename S>
struct NormLayout {
  using C = typename S::C;
  static constexpr int kNorms = Spec::template Rule<C>::kNumNorms;
  double* partials;  // [chunk][norm]
  C* step;           // rule.Finish(sums)
  int* ok;           // 1 when the inputs were accepted
  C* carried;        // pass 1's step term (16-bit storage only)

  __host__ __device__ NormLayout(void* scratch, int64_t n) {
    char* base = static_cast<char*>(scratch);
    const int64_t partials_bytes = NormScratch<Spec>::PartialsBytes(n, kNorms);
    partials = reinterpret_cast<double*>(base);
    step = reinterpret_cast<C*>(base + partials_bytes);
    ok = reinterpret_cast<int*>(base + partials_bytes + 16);
    carried = reinterpret_cast<C*>(base + partials_bytes + NormScratch<Spec>::FinishBytes());
  }
};

// Chunks and their sums: cc/cuda/chunk_sums.cuh.
template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) NormPass1Kernel(const DenseArgs args) {
  using C = typename S::C;
  using Bits = typename S::Bits;
  using Rule = typename Spec::template Rule<C>;
  constexpr int K = Rule::kNumSlots;
  constexpr int kNorms = Rule::kNumNorms;
  constexpr bool kRecompute = sizeof(Bits) == sizeof(C);
  __shared__ double tree[kNorms][kThreads];

  Rule rule;
  if (!BlockRule<Spec, C>(args.inputs, args.n, &rule)) return;
  const NormLayout<Spec, S> layout(args.scratch, args.n);
  Bits* var = static_cast<Bits*>(args.var);
  const Bits* grad = static_cast<const Bits*>(args.grad);
  const int64_t n = args.n;
  const int64_t num_chunks = NormScratch<Spec>::NumChunks(n);

  for (int64_t c = blockIdx.x; c < num_chunks; c += gridDim.x) {
    double pair[kNorms] = {};
    for (int half = 0; half < 2; ++half) {
      const int64_t i = c * kNormChunk + half * kThreads + threadIdx.x;
      if (i >= n) continue;
      const C w = S::Load(var[i]);
      C sc[K];
      for (int k = 0; k < K; ++k) {
        Bits* slot = static_cast<Bits*>(args.slots[k]);
        sc[k] = slot != nullptr ? S::Load(slot[i]) : C(0);
      }
      UpdateSlots(rule, w, sc, S::Load(grad[i]), std::make_index_sequence<K>());
      for (int k = 0; k < K; ++k) {
        Bits* slot = static_cast<Bits*>(args.slots[k]);
        if (slot != nullptr) slot[i] = S::Store(sc[k]);
      }
      C t[kNorms];
      // From the slots in compute precision, before their rounding (as the CPU).
      NormTerms(rule, w, sc, t, std::make_index_sequence<K>());
      if constexpr (!kRecompute) layout.carried[i] = t[Rule::kStepTerm];
      for (int k = 0; k < kNorms; ++k) {
        const double x = static_cast<double>(t[k]);
        pair[k] = pair[k] + x * x;  // half 0 + half 1: the h = kThreads step
      }
    }
    ChunkSums<kNorms>(pair, tree, layout.partials + c * kNorms);
  }
}

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) NormFinishKernel(const DenseArgs args) {
  using C = typename S::C;
  using Rule = typename Spec::template Rule<C>;
  constexpr int kNorms = Rule::kNumNorms;
  __shared__ double tree[kNorms][kThreads];

  const NormLayout<Spec, S> layout(args.scratch, args.n);
  Rule rule;
  const bool ok = BlockRule<Spec, C>(args.inputs, args.n, &rule);
  if (!ok) {
    if (threadIdx.x == 0) *layout.ok = 0;
    return;
  }
  const std::array<double, kNorms> sums = SumChunkPartials<kNorms>(
      layout.partials, NormScratch<Spec>::NumChunks(args.n), tree);
  if (threadIdx.x == 0) {
    *layout.step = rule.Finish(sums);
    *layout.ok = 1;
  }
}

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) NormPass2Kernel(const DenseArgs args) {
  using C = typename S::C;
  using Bits = typename S::Bits;
  using Rule = typename Spec::template Rule<C>;
  constexpr int K = Rule::kNumSlots;
  constexpr int kNorms = Rule::kNumNorms;
  constexpr bool kRecompute = sizeof(Bits) == sizeof(C);

  const NormLayout<Spec, S> layout(args.scratch, args.n);
  if (*layout.ok == 0) return;
  Rule rule;
  BlockRule<Spec, C>(args.inputs, args.n, &rule);
  const C step = *layout.step;
  Bits* var = static_cast<Bits*>(args.var);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < args.n;
       i += stride) {
    C w = S::Load(var[i]);
    C term;
    if constexpr (kRecompute) {
      C sc[K];
      for (int k = 0; k < K; ++k) {
        const Bits* slot = static_cast<const Bits*>(args.slots[k]);
        sc[k] = slot != nullptr ? S::Load(slot[i]) : C(0);
      }
      C t[kNorms];
      NormTerms(rule, w, sc, t, std::make_index_sequence<K>());
      term = t[Rule::kStepTerm];
    } else {
      term = layout.carried[i];
    }
    rule.Apply(w, term, step);
    var[i] = S::Store(w);
  }
}

template <typename Spec, typename S>
const char* RunWithNorms(const DenseArgs& args) {
  const auto stream = static_cast<cudaStream_t>(args.stream);
  const int64_t num_chunks = NormScratch<Spec>::NumChunks(args.n);
  const int chunk_blocks = GridSize(num_chunks * kThreads);
  NormPass1Kernel<Spec, S><<<chunk_blocks, kThreads, 0, stream>>>(args);
  NormFinishKernel<Spec, S><<<1, kThreads, 0, stream>>>(args);
  NormPass2Kernel<Spec, S><<<GridSize(args.n), kThreads, 0, stream>>>(args);
  return LaunchStatus();
}

// --- the launcher ---------------------------------------------------------------

// Rules with norms of their inputs (LARS, NovoGrad): input_norms_driver.cuh,
// which their .cu.cc files include.
template <typename Spec, typename S>
const char* RunInputNorms(const DenseArgs& args);

template <typename Spec>
const char* LaunchDense(DType dtype, const DenseArgs& args) {
  if (args.n == 0) return nullptr;
  return DispatchDType(dtype, [&](auto storage) -> const char* {
    using S = decltype(storage);
    if constexpr (Spec::kDriver == Driver::kPreconditioned) {
      return "kerasopt: the preconditioned rules have no GPU kernel";  // (nothing compiled)
    } else if constexpr (Spec::kDriver == Driver::kFactored) {
      return "kerasopt: Adafactor has no GPU kernel";  // (nothing compiled; no op calls it)
    } else if constexpr (kWithNorms<Spec>) {
      return RunWithNorms<Spec, S>(args);
    } else if constexpr (kInputNorms<Spec>) {
      return RunInputNorms<Spec, S>(args);
    } else {
      return RunDense<Spec, S>(args);
    }
  });
}

}  // namespace cuda
}  // namespace kerasopt
