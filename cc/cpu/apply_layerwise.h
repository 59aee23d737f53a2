// Runs a rule with layer-wise (per-variable) state on the CPU: NovoGrad's
// second moment is one scalar per variable, driven by ||g||^2 over the whole
// variable. Two passes over the memory:
//
//   pass 1: sum of g^2 over the variable      (reads g)
//   then:   layer = rule.Finish(sum, layer_slots)   updates the per-variable
//                                                   slots (scalars)
//   pass 2, per element: rule(w, slots..., g, layer)  (reads w, g, slots;
//                                                      writes w, slots)
//
// Slots: the first Rule::kNumSlots - Rule::kNumLayerSlots have the variable's
// shape; the trailing kNumLayerSlots point at ONE element each (shape ()).
// They are widened to the compute type for Finish and narrowed back once.
//
// The sum is deterministic for any number of threads, exactly as in
// apply_with_norms.h (fixed 512-element blocks, a halving tree in double per
// block, the partials added in block order on one thread), so
// kerasopt/fallback/lamb.py's sum_of_squares gives the same bits.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

namespace internal {

template <typename Rule, typename C, typename Layer, std::size_t... I>
inline void RunLayerwiseBlock(const Rule& rule, int64_t len, C* w, C (*slots)[kBlock],
                              const C* g, const Layer& layer, std::index_sequence<I...>) {
  for (int64_t j = 0; j < len; ++j) rule(w[j], slots[I][j]..., g[j], layer);
}

}  // namespace internal

template <typename Rule, typename T, typename ParallelFor>
void ApplyLayerwise(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr int kLayer = Rule::kNumLayerSlots;
  constexpr int kElement = Rule::kNumSlots - kLayer;
  static_assert(kLayer > 0 && kElement >= 0, "ApplyLayerwise needs layer slots");

  std::array<T*, kElement> element_slots{};
  for (int k = 0; k < kElement; ++k) element_slots[k] = slots[k];
  std::array<C, kLayer> layer_values{};
  for (int k = 0; k < kLayer; ++k) layer_values[k] = static_cast<C>(*slots[kElement + k]);

  // Pass 1: per-block partial sums of g^2.
  const int64_t num_blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partials(static_cast<size_t>(num_blocks));
  parallel_for(num_blocks, kBlock * DenseCostPerElement(2), [&](int64_t first, int64_t last) {
    alignas(64) C g[kBlock];
    alignas(64) double scratch[kBlock];
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, n - start);
      internal::Widen(grad + start, len, g);
      partials[b] = internal::BlockSumOfSquares(g, len, scratch);
    }
  });
  double sum = 0.0;
  for (int64_t b = 0; b < num_blocks; ++b) sum = sum + partials[b];

  const auto layer = rule.Finish(sum, layer_values);
  for (int k = 0; k < kLayer; ++k) *slots[kElement + k] = static_cast<T>(layer_values[k]);

  // Pass 2: the per-element update.
  int num_present = 0;
  for (T* s : element_slots) num_present += s != nullptr;
  const int64_t cost = DenseCostPerElement(2 * (2 + num_present));
  parallel_for(n, cost, [&](int64_t begin, int64_t end) {
    alignas(64) C w[kBlock];
    alignas(64) C g[kBlock];
    alignas(64) C s[internal::kRows<Rule::kNumSlots - Rule::kNumLayerSlots>][kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      internal::Widen(var + start, len, w);
      internal::Widen(grad + start, len, g);
      internal::WidenSlots(element_slots, start, len, &s[0][0]);
      internal::RunLayerwiseBlock(rule, len, w, s, g, layer,
                                  std::make_index_sequence<kElement>());
      internal::Narrow(w, len, var + start);
      internal::NarrowSlots(&s[0][0], start, len, element_slots);
    }
  });
}

// The driver policy of ApplyLayerwise (see cpu::Dense in apply_dense.h).
struct Layerwise {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyLayerwise(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
