// Runs a rule whose per-element step is scaled by norms over the WHOLE
// variable of inputs it does not change (LARS: ||w|| and ||g||), on the CPU:
//
//   pass 1, per element:  rule.NormTerms(w, g, t)     the K terms whose squares
//                                                      are summed (reads w, g)
//   between the passes:   scale = rule.Finish(sums)   sums[k] = sum t_k^2
//   pass 2, per element:  rule(w, slots..., g, scale) one dense pass
//                                                      (cc/cpu/apply_dense.h)
//
// Unlike apply_with_norms.h (LAMB, whose norm is of a term the slots produce),
// pass 1 writes nothing, and pass 2 updates the slots and the weight in one go.
// A rule whose NeedsNorms() is false for this call skips pass 1 (Finish is then
// called with zero sums).
//
// The sums are those of apply_with_norms.h: squares in double, a fixed halving
// tree per block of kBlock elements, block partials added in block order on one
// thread; so the result is the same for any number of threads, and
// kerasopt/fallback/lamb.py's sum_of_squares reproduces it.
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

// A rule with its per-call scale bound, in the shape ApplyDense runs.
template <typename Rule, typename Scale>
struct ScaledRule {
  static constexpr int kNumSlots = Rule::kNumSlots;
  const Rule& rule;
  Scale scale;
  template <typename... Args>
  KERASOPT_HOST_DEVICE void operator()(Args&&... args) const {
    rule(std::forward<Args>(args)..., scale);
  }
};

}  // namespace internal

template <typename Rule, typename T, typename ParallelFor>
void ApplyAfterNorms(const Rule& rule, int64_t n, T* var,
                     const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                     ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr int kNorms = Rule::kNumNorms;
  static_assert(kNorms > 0, "ApplyAfterNorms needs at least one norm");

  std::array<double, kNorms> sums{};
  if (rule.NeedsNorms()) {
    const int64_t num_blocks = (n + kBlock - 1) / kBlock;
    // partials[b * kNorms + k]: block b's sum of squares of norm term k.
    std::vector<double> partials(static_cast<size_t>(num_blocks * kNorms));
    const int64_t cost = kBlock * DenseCostPerElement(2 + 2 * kNorms);
    parallel_for(num_blocks, cost, [&](int64_t first, int64_t last) {
      alignas(64) C w[kBlock];
      alignas(64) C g[kBlock];
      alignas(64) C t[kNorms][kBlock];
      alignas(64) double scratch[kBlock];
      for (int64_t b = first; b < last; ++b) {
        const int64_t start = b * kBlock;
        const int64_t len = std::min(kBlock, n - start);
        internal::Widen(var + start, len, w);
        internal::Widen(grad + start, len, g);
        for (int64_t j = 0; j < len; ++j) {
          C terms[kNorms];
          rule.NormTerms(w[j], g[j], terms);
          for (int k = 0; k < kNorms; ++k) t[k][j] = terms[k];
        }
        for (int k = 0; k < kNorms; ++k) {
          partials[b * kNorms + k] = internal::BlockSumOfSquares(t[k], len, scratch);
        }
      }
    });
    for (int64_t b = 0; b < num_blocks; ++b) {  // in block order, on this thread
      for (int k = 0; k < kNorms; ++k) sums[k] = sums[k] + partials[b * kNorms + k];
    }
  }
  const auto scale = rule.Finish(sums);
  const internal::ScaledRule<Rule, decltype(scale)> scaled{rule, scale};
  ApplyDense(scaled, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
}

// The driver policy of ApplyAfterNorms (see cpu::Dense in apply_dense.h).
struct AfterNorms {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyAfterNorms(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
