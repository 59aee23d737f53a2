// Runs a rule that needs norms over the WHOLE variable (LAMB's trust ratio)
// on the CPU, in two passes over the memory:
//
//   pass 1, per element:  rule.Update(w, slots..., g)   updates the slots
//                         rule.NormTerms(w, slots..., t) the K terms whose
//                                                        squares are summed
//   between the passes:   step = rule.Finish(sums)      sums[k] = sum t_k^2
//   pass 2, per element:  rule.Apply(w, t[S], step)    updates the weight
//                                                        (S = Rule::kStepTerm)
//
// Pass 2 needs the term t[S] (LAMB's r) exactly as pass 1 summed it. When the
// storage type is the compute type (float, double), pass 2 recomputes it from
// the slots pass 1 stored, which are the very values it was computed from, so
// no memory beyond the weights and slots is used. For 16-bit storage the
// slots are rounded when stored, so pass 1 keeps t[S] in a compute-type
// buffer of n elements for pass 2: every step is then float32 arithmetic
// rounded once, as in the other kerasopt rules.
//
// Determinism, for any number of threads: the variable is cut into fixed
// blocks of kBlock elements counted from element 0, whatever the thread split
// (the thread pool shares out whole blocks). In each block the squares are
// taken in double and summed by a fixed halving tree (t[j] += t[j + h] for
// h = kBlock/2, ..., 1, the block's tail padded with zeros); the per-block
// partial sums are then added in block order, in double, on one thread. So
// the sums are the same bits with 1 thread or 64. kerasopt/fallback/lamb.py
// computes the same tree and the same in-order sum with TensorFlow ops.
//
// The block staging (widen into compute-type buffers, run, narrow back) is
// apply_dense.h's.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

namespace internal {

// Sum of the squares of t[0..len), in double, by the fixed halving tree.
// `scratch` holds kBlock doubles.
template <typename C>
inline double BlockSumOfSquares(const C* t, int64_t len, double* scratch) {
  for (int64_t j = 0; j < len; ++j) {
    const double x = static_cast<double>(t[j]);
    scratch[j] = x * x;
  }
  std::fill(scratch + len, scratch + kBlock, 0.0);
  for (int64_t h = kBlock / 2; h >= 1; h /= 2) {
    for (int64_t j = 0; j < h; ++j) scratch[j] = scratch[j] + scratch[j + h];
  }
  return scratch[0];
}

template <typename Rule, typename C, std::size_t... I>
inline void UpdateBlock(const Rule& rule, int64_t len, const C* w,
                        C (*slots)[kBlock], const C* g, std::index_sequence<I...>) {
  for (int64_t j = 0; j < len; ++j) rule.Update(w[j], slots[I][j]..., g[j]);
}

template <typename Rule, typename C, std::size_t... I>
inline void TermsBlock(const Rule& rule, int64_t len, const C* w,
                       C (*slots)[kBlock], C (*terms)[kBlock],
                       std::index_sequence<I...>) {
  for (int64_t j = 0; j < len; ++j) {
    C t[Rule::kNumNorms];
    rule.NormTerms(w[j], slots[I][j]..., t);
    for (int k = 0; k < Rule::kNumNorms; ++k) terms[k][j] = t[k];
  }
}

template <typename Rule, typename C, typename Step>
inline void ApplyBlock(const Rule& rule, int64_t len, C* w, const C* term,
                       const Step& step) {
  for (int64_t j = 0; j < len; ++j) rule.Apply(w[j], term[j], step);
}

}  // namespace internal

template <typename Rule, typename T, typename ParallelFor>
void ApplyWithNorms(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr int kSlots = Rule::kNumSlots;
  constexpr int kNorms = Rule::kNumNorms;
  static_assert(kNorms > 0, "ApplyWithNorms needs at least one norm");
  using Slots = std::make_index_sequence<kSlots>;
  int num_present = 0;
  for (T* s : slots) num_present += s != nullptr;

  constexpr bool kRecompute = std::is_same_v<T, C>;
  static_assert(0 <= Rule::kStepTerm && Rule::kStepTerm < kNorms, "kStepTerm");
  const int64_t num_blocks = (n + kBlock - 1) / kBlock;
  // 16-bit storage: pass 1's t[kStepTerm], for pass 2.
  std::vector<C> carried(kRecompute ? 0 : static_cast<size_t>(n));
  // partials[b * kNorms + k]: block b's sum of squares of norm term k.
  std::vector<double> partials(static_cast<size_t>(num_blocks * kNorms));

  // Pass 1: read w, g, slots; write slots; per-block partial sums.
  const int64_t cost1 = kBlock * DenseCostPerElement(2 + 2 * num_present + 2 * kNorms);
  parallel_for(num_blocks, cost1, [&](int64_t first, int64_t last) {
    alignas(64) C w[kBlock];
    alignas(64) C g[kBlock];
    alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
    alignas(64) C t[Rule::kNumNorms][kBlock];
    alignas(64) double scratch[kBlock];
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, n - start);
      internal::Widen(var + start, len, w);
      internal::Widen(grad + start, len, g);
      internal::WidenSlots(slots, start, len, &s[0][0]);
      internal::UpdateBlock(rule, len, w, s, g, Slots());
      internal::NarrowSlots(&s[0][0], start, len, slots);
      internal::TermsBlock(rule, len, w, s, t, Slots());
      if constexpr (!kRecompute) {
        std::copy(t[Rule::kStepTerm], t[Rule::kStepTerm] + len, carried.data() + start);
      }
      for (int k = 0; k < kNorms; ++k) {
        partials[b * kNorms + k] = internal::BlockSumOfSquares(t[k], len, scratch);
      }
    }
  });

  // In block order, on this thread.
  std::array<double, kNorms> sums{};
  for (int64_t b = 0; b < num_blocks; ++b) {
    for (int k = 0; k < kNorms; ++k) sums[k] = sums[k] + partials[b * kNorms + k];
  }
  const auto step = rule.Finish(sums);

  // Pass 2: read w and the slots (or the carried term); write w.
  const int64_t cost2 = kBlock * DenseCostPerElement(2 + (kRecompute ? num_present : 2));
  parallel_for(num_blocks, cost2, [&](int64_t first, int64_t last) {
    alignas(64) C w[kBlock];
    alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
    alignas(64) C t[Rule::kNumNorms][kBlock];
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, n - start);
      internal::Widen(var + start, len, w);
      const C* term;
      if constexpr (kRecompute) {
        internal::WidenSlots(slots, start, len, &s[0][0]);
        internal::TermsBlock(rule, len, w, s, t, Slots());
        term = t[Rule::kStepTerm];
      } else {
        term = carried.data() + start;
      }
      internal::ApplyBlock(rule, len, w, term, step);
      internal::Narrow(w, len, var + start);
    }
  });
}

// The driver policy of ApplyWithNorms (see cpu::Dense in apply_dense.h).
struct WithNorms {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyWithNorms(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
