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
// Float and double variables are updated in place, block by block; 16-bit
// ones (or a call with an absent slot) are staged as in apply_dense.h (widen
// a block into compute-type buffers, run, narrow back). Both passes are
// compiled for the baseline ISA and for AVX2 (cc/cpu/isa.h), which round
// alike.
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

// Sum of the squares of t[0..len), in double, by the fixed halving tree over
// kBlock terms (the tail padded with zeros). The first level of the tree is
// taken as the squares are made: s[j] = t[j]^2 + t[j + kBlock/2]^2.
template <typename C>
KERASOPT_ALWAYS_INLINE double BlockSumOfSquares(const C* t, int64_t len) {
  constexpr int64_t kHalf = kBlock / 2;
  alignas(64) double s[kHalf];
  if (len == kBlock) {
    for (int64_t j = 0; j < kHalf; ++j) {
      const double a = static_cast<double>(t[j]);
      const double b = static_cast<double>(t[j + kHalf]);
      s[j] = a * a + b * b;
    }
  } else {
    for (int64_t j = 0; j < kHalf; ++j) {
      const double a = j < len ? static_cast<double>(t[j]) : 0.0;
      const double b = j + kHalf < len ? static_cast<double>(t[j + kHalf]) : 0.0;
      s[j] = a * a + b * b;
    }
  }
  for (int64_t h = kHalf / 2; h >= 1; h /= 2) {
    for (int64_t j = 0; j < h; ++j) s[j] = s[j] + s[j + h];
  }
  return s[0];
}

// partials[b * K + k] (block b, term k) summed over the blocks, in block order,
// on one thread: the same bits for any thread split.
template <int K>
std::array<double, K> SumInBlockOrder(const double* partials, int64_t num_blocks) {
  std::array<double, K> sums{};
  for (int64_t b = 0; b < num_blocks; ++b) {
    for (int k = 0; k < K; ++k) sums[k] = sums[k] + partials[b * K + k];
  }
  return sums;
}

// Pass 1's element loop: the rule's Update, then its norm terms into rows of
// `terms`. W, G and the slot rows are local buffers or, when the storage is
// the compute type, the memory itself. The slots go through locals (see
// RunDirectAt in apply_dense.h: GCC drops `__restrict` on a parameter pack,
// and reloading a slot after storing another stalls on page-aligned tensors).
template <typename Rule, typename C, std::size_t... I>
KERASOPT_ALWAYS_INLINE void UpdateAndTermsAt(const Rule& rule, int64_t len,
                                             const C* __restrict w,
                                             const std::array<C*, sizeof...(I)>& rows,
                                             const C* __restrict g,
                                             C (*__restrict terms)[kBlock],
                                             std::index_sequence<I...>) {
  C* const s[] = {rows[I]...};
  for (int64_t j = 0; j < len; ++j) {
    C s_j[] = {s[I][j]...};
    rule.Update(w[j], s_j[I]..., g[j]);
    C t[Rule::kNumNorms];
    rule.NormTerms(w[j], s_j[I]..., t);
    ((s[I][j] = s_j[I]), ...);
    for (int k = 0; k < Rule::kNumNorms; ++k) terms[k][j] = t[k];
  }
}

// Pass 2's element loop from the slots: the step term recomputed, then Apply.
template <typename Rule, typename C, typename Step, typename... S>
KERASOPT_ALWAYS_INLINE void TermsAndApply(const Rule& rule, int64_t len, C* __restrict w,
                                          const Step& step, const S* __restrict... s) {
  for (int64_t j = 0; j < len; ++j) {
    C t[Rule::kNumNorms];
    rule.NormTerms(w[j], s[j]..., t);
    rule.Apply(w[j], t[Rule::kStepTerm], step);
  }
}

// The loop above on rows given as an array of pointers.
template <typename Rule, typename C, typename Step, std::size_t... I>
KERASOPT_ALWAYS_INLINE void TermsAndApplyAt(const Rule& rule, int64_t len, C* w,
                                            const Step& step,
                                            const std::array<C*, sizeof...(I)>& rows,
                                            std::index_sequence<I...>) {
  TermsAndApply(rule, len, w, step, static_cast<const C*>(rows[I])...);
}

// Pointers to the rows of a block's slot buffer (see WidenSlots).
template <int N, typename C>
KERASOPT_ALWAYS_INLINE std::array<C*, N> RowsOf(C (*buffer)[kBlock]) {
  std::array<C*, N> rows;
  for (int k = 0; k < N; ++k) rows[k] = buffer[k];
  return rows;
}
// Pointers to elements [start, ...) of each slot.
template <typename T, std::size_t N>
KERASOPT_ALWAYS_INLINE std::array<T*, N> RowsAt(const std::array<T*, N>& slots, int64_t start) {
  std::array<T*, N> rows;
  for (std::size_t k = 0; k < N; ++k) rows[k] = slots[k] + start;
  return rows;
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

// Pass 1 on blocks [first, last) of x: reads w, g, slots; writes the slots
// (and the carried term); stores block b's sums of squares in
// partials[(b - first) * kNumNorms + k].
template <typename Rule, typename T>
void NormsPass1Blocks(const Rule& rule_in, const NormsTensor<Rule, T>& x, int64_t first,
                      int64_t last, double* partials) {
  WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
    const Rule rule = rule_in;  // local: its fields are plainly loop-invariant
    using C = ComputeType<T>;
    constexpr int kNorms = Rule::kNumNorms;
    using Slots = std::make_index_sequence<Rule::kNumSlots>;
    alignas(64) C t[kNorms][kBlock];
    const bool in_place = std::is_same_v<T, C> && internal::AllPresent(x.slots);
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, x.n - start);
      if constexpr (std::is_same_v<T, C>) {
        if (in_place) {
          internal::UpdateAndTermsAt(rule, len, x.var + start, internal::RowsAt(x.slots, start),
                                     x.grad + start, t, Slots());
        }
      }
      if (!in_place) {
        alignas(64) C w[kBlock];
        alignas(64) C g[kBlock];
        alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
        internal::Widen(x.var + start, len, w);
        internal::Widen(x.grad + start, len, g);
        internal::WidenSlots(x.slots, start, len, &s[0][0]);
        internal::UpdateAndTermsAt(rule, len, w, internal::RowsOf<Rule::kNumSlots>(s), g, t,
                                   Slots());
        internal::NarrowSlots(&s[0][0], start, len, x.slots);
        if constexpr (kCarriesStepTerm<T>) {
          std::copy(t[Rule::kStepTerm], t[Rule::kStepTerm] + len, x.carried + start);
        }
      }
      for (int k = 0; k < kNorms; ++k) {
        partials[(b - first) * kNorms + k] = internal::BlockSumOfSquares(t[k], len);
      }
    }
  });
}

// The per-variable step from its blocks' partial sums, added in block order.
template <typename Rule>
auto NormsFinish(const Rule& rule, const double* partials, int64_t num_blocks) {
  return rule.Finish(internal::SumInBlockOrder<Rule::kNumNorms>(partials, num_blocks));
}

// Pass 2 on blocks [first, last) of x: reads w and the slots (or the carried
// term); writes w.
template <typename Rule, typename T, typename Step>
void NormsPass2Blocks(const Rule& rule_in, const NormsTensor<Rule, T>& x, int64_t first,
                      int64_t last, const Step& step_in) {
  WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
    const Rule rule = rule_in;
    const Step step = step_in;
    using C = ComputeType<T>;
    using Slots = std::make_index_sequence<Rule::kNumSlots>;
    const bool in_place = std::is_same_v<T, C> && internal::AllPresent(x.slots);
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, x.n - start);
      if constexpr (std::is_same_v<T, C>) {
        if (in_place) {
          internal::TermsAndApplyAt(rule, len, x.var + start, step,
                                    internal::RowsAt(x.slots, start), Slots());
          continue;
        }
      }
      alignas(64) C w[kBlock];
      internal::Widen(x.var + start, len, w);
      if constexpr (kCarriesStepTerm<T>) {
        const C* term = x.carried + start;
        for (int64_t j = 0; j < len; ++j) rule.Apply(w[j], term[j], step);
      } else {
        alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
        internal::WidenSlots(x.slots, start, len, &s[0][0]);
        internal::TermsAndApplyAt(rule, len, w, step, internal::RowsOf<Rule::kNumSlots>(s),
                                  Slots());
      }
      internal::Narrow(w, len, x.var + start);
    }
  });
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
    NormsPass1Blocks(rule, x, first, last, partials.data() + first * kNorms);
  });
  const auto step = NormsFinish(rule, partials.data(), num_blocks);  // in block order
  parallel_for(num_blocks, NormsPass2Cost(x), [&](int64_t first, int64_t last) {
    NormsPass2Blocks(rule, x, first, last, step);
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
