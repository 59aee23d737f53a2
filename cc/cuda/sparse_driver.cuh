// Runs a per-element rule over the rows named by a sparse gradient on the GPU
// (nvcc only): the device side of the KerasoptSparseApply<Algo> ops (see
// SparseArgs in cc/cuda/launch.h).
//
//   PrepareSparse (sparse_prepare.cu.cc, once for all algorithms):
//     keys = indices, values = positions; any index outside [0, num_rows)
//     records its smallest position in `bad`; a stable radix sort by key
//     then lists each row's positions in ascending order.
//   SparseRowsKernel (per algorithm): one warp per sorted position; the warp
//     at the first position of a row sums that row's gradient rows in
//     position order, in the compute type from 0 (the CPU's order), and runs
//     the rule over the row, its lanes striding over the row's elements.
// Nothing is written when `bad` holds a position.
//
// Instantiated per declared rule with kSparse next to its dense launcher
// (rule_launchers.cu.cc.in).
#pragma once

#include <cstdint>

#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/device_util.cuh"
#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

constexpr unsigned long long kNoBadIndex = ~0ull;

// Where PrepareSparse keeps its results in the op's scratch; CUB's temporary
// storage takes the rest.
struct SparseLayout {
  unsigned long long* bad;  // smallest position of an out-of-range index
  int64_t* keys_in;
  int64_t* keys_out;        // rows, sorted
  int64_t* positions_in;
  int64_t* positions_out;   // positions, sorted by (row, position)
  void* sort_storage;

  __host__ __device__ SparseLayout(void* scratch, int64_t num_indices) {
    char* base = static_cast<char*>(scratch);
    const int64_t array = AlignUp(num_indices * 8);
    bad = reinterpret_cast<unsigned long long*>(base);
    keys_in = reinterpret_cast<int64_t*>(base + 256);
    keys_out = reinterpret_cast<int64_t*>(base + 256 + array);
    positions_in = reinterpret_cast<int64_t*>(base + 256 + 2 * array);
    positions_out = reinterpret_cast<int64_t*>(base + 256 + 3 * array);
    sort_storage = base + 256 + 4 * array;
  }
  static __host__ __device__ int64_t FixedBytes(int64_t num_indices) {
    return 256 + 4 * AlignUp(num_indices * 8);
  }
};

constexpr int kWarp = 32;

template <typename Spec, typename S>
__global__ void __launch_bounds__(kThreads) SparseRowsKernel(const SparseArgs args) {
  using C = typename S::C;
  using Bits = typename S::Bits;
  using Rule = typename Spec::template Rule<C>;
  constexpr int K = Rule::kNumSlots;
  Rule rule;
  // The rule sees the gradient's size, as the CPU sparse op and the fallback's
  // rows do (AdamW's rounding depends on it).
  if (!BlockRule<Spec, C>(args.inputs, args.num_indices * args.row_size, &rule)) return;
  const SparseLayout layout(args.scratch, args.num_indices);
  if (*layout.bad != kNoBadIndex) return;

  Bits* var = static_cast<Bits*>(args.var);
  const Bits* grad = static_cast<const Bits*>(args.grad);
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int64_t m = args.num_indices;
  const int64_t d = args.row_size;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp;
       p < m; p += warps) {
    const int64_t row = layout.keys_out[p];
    if (p > 0 && layout.keys_out[p - 1] == row) continue;  // not the row's first position
    int64_t end = p + 1;
    while (end < m && layout.keys_out[end] == row) ++end;
    for (int64_t e = lane; e < d; e += kWarp) {
      C g = C(0);
      for (int64_t q = p; q < end; ++q) g += S::Load(grad[layout.positions_out[q] * d + e]);
      const int64_t i = row * d + e;
      C w = S::Load(var[i]);
      C sc[K];
      for (int k = 0; k < K; ++k) {
        const Bits* slot = static_cast<const Bits*>(args.slots[k]);
        sc[k] = slot != nullptr ? S::Load(slot[i]) : C(0);
      }
      RunRule(rule, w, sc, g, std::make_index_sequence<K>());
      var[i] = S::Store(w);
      for (int k = 0; k < K; ++k) {
        Bits* slot = static_cast<Bits*>(args.slots[k]);
        if (slot != nullptr) slot[i] = S::Store(sc[k]);
      }
    }
  }
}

template <typename Spec>
const char* LaunchSparse(DType dtype, const SparseArgs& args) {
  if constexpr (!Spec::kSparse || Spec::kDriver != Driver::kElementwise) {
    return "kerasopt: this rule has no sparse op";  // (nothing compiled for it)
  } else {
    if (args.num_indices == 0) return nullptr;
    if (const char* error = PrepareSparse(args)) return error;
    if (args.row_size == 0) return nullptr;
    return DispatchDType(dtype, [&](auto storage) -> const char* {
      using S = decltype(storage);
      SparseRowsKernel<Spec, S><<<GridSize(args.num_indices * kWarp), kThreads, 0,
                                  static_cast<cudaStream_t>(args.stream)>>>(args);
      return LaunchStatus();
    });
  }
}

}  // namespace cuda
}  // namespace kerasopt
