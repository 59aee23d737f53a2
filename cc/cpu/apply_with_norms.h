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

// One variable as ApplyWithNorms sees it. `carried` (16-bit storage only)
// holds n compute-type elements for pass 1's t[kStepTerm].
template <typename Rule, typename T>
struct NormsTensor {
  int64_t n;
  T* var;
  std::array<T*, Rule::kNumSlots> slots;
  const T* grad;
  ComputeType<T>* carried;
};

template <typename T>
constexpr bool kCarriesStepTerm = !std::is_same_v<T, ComputeType<T>>;

template <typename Rule, typename T>
int64_t NormsPass1Cost(const NormsTensor<Rule, T>& x) {
  int num_present = 0;
  for (T* s : x.slots) num_present += s != nullptr;
  return kBlock * DenseCostPerElement(2 + 2 * num_present + 2 * Rule::kNumNorms);
}
template <typename Rule, typename T>
int64_t NormsPass2Cost(const NormsTensor<Rule, T>& x) {
  int num_present = 0;
  for (T* s : x.slots) num_present += s != nullptr;
  return kBlock * DenseCostPerElement(2 + (kCarriesStepTerm<T> ? 2 : num_present));
}

// Pass 1 on block b of x: reads w, g, slots; writes the slots (and the
// carried term); stores the block's sums of squares in partials[0..kNumNorms).
template <typename Rule, typename T>
void NormsPass1Block(const Rule& rule, const NormsTensor<Rule, T>& x, int64_t b,
                     double* partials) {
  using C = ComputeType<T>;
  using Slots = std::make_index_sequence<Rule::kNumSlots>;
  alignas(64) C w[kBlock];
  alignas(64) C g[kBlock];
  alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
  alignas(64) C t[Rule::kNumNorms][kBlock];
  alignas(64) double scratch[kBlock];
  const int64_t start = b * kBlock;
  const int64_t len = std::min(kBlock, x.n - start);
  internal::Widen(x.var + start, len, w);
  internal::Widen(x.grad + start, len, g);
  internal::WidenSlots(x.slots, start, len, &s[0][0]);
  internal::UpdateBlock(rule, len, w, s, g, Slots());
  internal::NarrowSlots(&s[0][0], start, len, x.slots);
  internal::TermsBlock(rule, len, w, s, t, Slots());
  if constexpr (kCarriesStepTerm<T>) {
    std::copy(t[Rule::kStepTerm], t[Rule::kStepTerm] + len, x.carried + start);
  }
  for (int k = 0; k < Rule::kNumNorms; ++k) {
    partials[k] = internal::BlockSumOfSquares(t[k], len, scratch);
  }
}

// The per-variable step from its blocks' partial sums, added in block order.
template <typename Rule>
auto NormsFinish(const Rule& rule, const double* partials, int64_t num_blocks) {
  constexpr int kNorms = Rule::kNumNorms;
  std::array<double, kNorms> sums{};
  for (int64_t b = 0; b < num_blocks; ++b) {
    for (int k = 0; k < kNorms; ++k) sums[k] = sums[k] + partials[b * kNorms + k];
  }
  return rule.Finish(sums);
}

// Pass 2 on block b of x: reads w and the slots (or the carried term); writes w.
template <typename Rule, typename T, typename Step>
void NormsPass2Block(const Rule& rule, const NormsTensor<Rule, T>& x, int64_t b,
                     const Step& step) {
  using C = ComputeType<T>;
  alignas(64) C w[kBlock];
  alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
  alignas(64) C t[Rule::kNumNorms][kBlock];
  const int64_t start = b * kBlock;
  const int64_t len = std::min(kBlock, x.n - start);
  internal::Widen(x.var + start, len, w);
  const C* term;
  if constexpr (!kCarriesStepTerm<T>) {
    internal::WidenSlots(x.slots, start, len, &s[0][0]);
    internal::TermsBlock(rule, len, w, s, t,
                         std::make_index_sequence<Rule::kNumSlots>());
    term = t[Rule::kStepTerm];
  } else {
    term = x.carried + start;
  }
  internal::ApplyBlock(rule, len, w, term, step);
  internal::Narrow(w, len, x.var + start);
}

template <typename Rule, typename T, typename ParallelFor>
void ApplyWithNorms(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr int kNorms = Rule::kNumNorms;
  static_assert(kNorms > 0, "ApplyWithNorms needs at least one norm");
  static_assert(0 <= Rule::kStepTerm && Rule::kStepTerm < kNorms, "kStepTerm");
  const int64_t num_blocks = (n + kBlock - 1) / kBlock;
  std::vector<C> carried(kCarriesStepTerm<T> ? static_cast<size_t>(n) : 0);
  const NormsTensor<Rule, T> x{n, var, slots, grad, carried.data()};
  // partials[b * kNorms + k]: block b's sum of squares of norm term k.
  std::vector<double> partials(static_cast<size_t>(num_blocks * kNorms));

  parallel_for(num_blocks, NormsPass1Cost(x), [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      NormsPass1Block(rule, x, b, partials.data() + b * kNorms);
    }
  });
  const auto step = NormsFinish(rule, partials.data(), num_blocks);  // in block order
  parallel_for(num_blocks, NormsPass2Cost(x), [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) NormsPass2Block(rule, x, b, step);
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
