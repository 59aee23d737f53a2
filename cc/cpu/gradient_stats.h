// One read of a list of gradients: each one's sum of squares (float64) and
// whether every element of all of them is finite. The reduction behind
// KerasoptMultiGradientStats (cc/tf/gradient_stats_op.cc), which serves the
// finite check of loss scaling and `nonfinite=` (kerasopt/optimizers/
// nonfinite.py: all_finite). The clipping norms do not use it: they keep
// Keras's float32 sums, to the bit (docs/training-configs.md).
//
// Deterministic for any thread count: a gradient is cut into chunks of
// kStatsChunk elements counted from its element 0 (the work items shared out
// over threads); within a chunk, element j goes to lane j % kStatsLanes, each
// lane summed in element order, the lanes combined as a fixed tree; a
// gradient's chunks are then added in chunk order. Squares are taken in
// float64, so a 16- or 32-bit element's square is exact and never overflows:
// the only rounding is the float64 sums'. tests/test_gradient_stats.py
// replays this order in NumPy and expects the same bits.
//
// Finiteness: the square of a finite 16- or 32-bit element (at most 1.2e77
// in float64) and any sum of them stay finite, so their sum of squares is
// finite exactly when every element is. A float64 square may overflow, so
// float64 gradients also sum `x - x`: +0 for a finite x, NaN for inf or NaN.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cc/cpu/float16_bits.h"
#include "cc/cpu/isa.h"

namespace kerasopt {
namespace cpu {

constexpr int64_t kStatsChunk = 16384;  // elements per work item
// Lanes: eight AVX2 vectors of float64, so that the adds of one lane do not
// wait on each other (with 8 lanes the loop ran at the add's latency).
constexpr int kStatsLanes = 32;
constexpr int64_t kStatsBlock = 512;    // 16-bit elements widened per step

// One chunk's sum of squares, and 0 (all finite) or NaN.
struct ChunkStats {
  double sum_of_squares;
  double nonfinite;
};

namespace internal {

// kCheck: also sum x - x into `bad` (float64 gradients).
template <bool kCheck, typename C>
KERASOPT_ALWAYS_INLINE void AddToLanes(const C* __restrict x, int64_t len,
                                       double* __restrict squares, double* __restrict bad) {
  // x starts at a multiple of kStatsLanes within its chunk, so its element j
  // is in lane j % kStatsLanes.
  int64_t j = 0;
  for (; j + kStatsLanes <= len; j += kStatsLanes) {
    for (int l = 0; l < kStatsLanes; ++l) {
      const double v = static_cast<double>(x[j + l]);
      squares[l] += v * v;
      if constexpr (kCheck) bad[l] += v - v;
    }
  }
  for (; j < len; ++j) {
    const double v = static_cast<double>(x[j]);
    squares[j % kStatsLanes] += v * v;
    if constexpr (kCheck) bad[j % kStatsLanes] += v - v;
  }
}

// Adjacent pairs, then pairs of those, ... (a fixed tree over the lanes).
KERASOPT_ALWAYS_INLINE double CombineLanes(double* s) {
  for (int width = kStatsLanes / 2; width >= 1; width /= 2) {
    for (int l = 0; l < width; ++l) s[l] = s[2 * l] + s[2 * l + 1];
  }
  return s[0];
}

template <typename T>
KERASOPT_ALWAYS_INLINE ChunkStats ChunkStatsBody(const T* x, int64_t len) {
  alignas(64) double squares[kStatsLanes] = {};
  alignas(64) double bad[kStatsLanes] = {};
  if constexpr (LayoutOf<T>() != Float16Layout::kNone) {
    alignas(64) float wide[kStatsBlock];
    for (int64_t start = 0; start < len; start += kStatsBlock) {
      const int64_t n = std::min(kStatsBlock, len - start);
      Float16ToFloat(x + start, n, wide);
      AddToLanes<false>(wide, n, squares, bad);
    }
  } else {
    AddToLanes<std::is_same_v<T, double>>(x, len, squares, bad);
  }
  const double sum = CombineLanes(squares);
  if constexpr (std::is_same_v<T, double>) return {sum, CombineLanes(bad)};
  return {sum, sum - sum};  // +0 when finite (see above), else NaN
}

}  // namespace internal

// Elements [0, len) of one chunk (len <= kStatsChunk).
template <typename T>
ChunkStats StatsOfChunk(const T* x, int64_t len) {
  ChunkStats out{};
  WithBestIsa([&]() KERASOPT_INLINE_LAMBDA { out = internal::ChunkStatsBody(x, len); });
  return out;
}

}  // namespace cpu
}  // namespace kerasopt
