// Runs one rule over a LIST of variables (one dtype) in a single parallel
// launch: the multi-tensor drivers behind the KerasoptMultiApply<Algo> ops.
//
// Each variable is cut into work items counted from its element 0 (chunks of
// kMultiChunk elements for MultiDense, blocks of kBlock for MultiWithNorms);
// the items of all variables are numbered in a row and shared out by one
// `parallel_for` over the caller's thread pool, so 1000 small variables cost
// one launch instead of 1000, and one large variable is still split over all
// threads. Every item runs the same per-range code as the single-variable
// drivers (DenseRange, NormsPass1Blocks, NormsPass2Blocks), so the results are
// the same bits as one op per variable, for any thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

// Elements per MultiDense work item (a multiple of kBlock).
constexpr int64_t kMultiChunk = 32 * kBlock;

// One variable of a multi-tensor update. Its slots are stored as S: T, or
// float for a 16-bit T (MultiDense only; see apply_dense.h).
template <typename Rule, typename T, typename S = T>
struct TensorRef {
  int64_t n;
  T* var;
  std::array<S*, Rule::kNumSlots> slots;
  const T* grad;
};

namespace internal {

// first[i]: number of the first item of tensor i; first[size] = total.
template <typename Ref, typename ItemsOf>
std::vector<int64_t> FirstItems(const std::vector<Ref>& tensors, ItemsOf items_of) {
  std::vector<int64_t> first(tensors.size() + 1, 0);
  for (size_t i = 0; i < tensors.size(); ++i) first[i + 1] = first[i] + items_of(tensors[i]);
  return first;
}

// Calls fn(tensor, item_within_tensor) for items [begin, end).
template <typename Fn>
void ForItems(const std::vector<int64_t>& first, int64_t begin, int64_t end, Fn&& fn) {
  size_t t = std::upper_bound(first.begin(), first.end(), begin) - first.begin() - 1;
  for (int64_t item = begin; item < end; ++item) {
    while (item >= first[t + 1]) ++t;
    fn(t, item - first[t]);
  }
}

template <typename T, std::size_t N>
int NumPresent(const std::array<T*, N>& slots) {
  int k = 0;
  for (T* s : slots) k += s != nullptr;
  return k;
}

}  // namespace internal

// `rules` holds one rule for all variables, or one per variable (for rules
// that depend on the variable, e.g. AdamW's decay rounding on its size).
template <typename Rule>
const Rule& RuleFor(const std::vector<Rule>& rules, size_t t) {
  return rules[rules.size() == 1 ? 0 : t];
}

// Element-wise rules (cc/kernels/<algo>.h with operator()).
struct MultiDense {
  static constexpr bool kTakesWideSlots = true;

  template <typename Rule, typename T, typename S, typename ParallelFor>
  static void Apply(const std::vector<Rule>& rules,
                    const std::vector<TensorRef<Rule, T, S>>& tensors,
                    ParallelFor&& parallel_for) {
    if (tensors.empty()) return;
    const auto first = internal::FirstItems(tensors, [](const TensorRef<Rule, T, S>& x) {
      return (x.n + kMultiChunk - 1) / kMultiChunk;
    });
    const int64_t cost =
        kMultiChunk * DenseCostPerElement(2 * (2 + internal::NumPresent(tensors[0].slots)));
    parallel_for(first.back(), cost, [&](int64_t begin, int64_t end) {
      internal::ForItems(first, begin, end, [&](size_t t, int64_t chunk) {
        const TensorRef<Rule, T, S>& x = tensors[t];
        const int64_t start = chunk * kMultiChunk;
        DenseRange(RuleFor(rules, t), x.var, x.slots, x.grad, start, std::min(x.n, start + kMultiChunk));
      });
    });
  }
};

// Rules with per-variable norms (apply_with_norms.h): pass 1 over the blocks
// of every variable, each variable's norms summed in its own block order, then
// pass 2 over every block. Two launches in all, whatever the number of
// variables.
struct MultiWithNorms {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const std::vector<Rule>& rules,
                    const std::vector<TensorRef<Rule, T>>& tensors,
                    ParallelFor&& parallel_for) {
    using C = ComputeType<T>;
    using Step = decltype(rules[0].Finish(std::array<double, Rule::kNumNorms>{}));
    constexpr int kNorms = Rule::kNumNorms;
    if (tensors.empty()) return;
    const auto first = internal::FirstItems(tensors, [](const TensorRef<Rule, T>& x) {
      return (x.n + kBlock - 1) / kBlock;
    });
    // 16-bit storage: one carried buffer for all variables, at element offsets.
    int64_t total_n = 0;
    for (const auto& x : tensors) total_n += x.n;
    std::vector<C> carried(kCarriesStepTerm<T> ? static_cast<size_t>(total_n) : 0);
    std::vector<NormsTensor<Rule, T>> refs;
    refs.reserve(tensors.size());
    int64_t offset = 0;
    for (const auto& x : tensors) {
      refs.push_back({x.n, x.var, x.slots, x.grad,
                      kCarriesStepTerm<T> ? carried.data() + offset : nullptr});
      offset += x.n;
    }
    std::vector<double> partials(static_cast<size_t>(first.back() * kNorms));

    parallel_for(first.back(), NormsPass1Cost(refs[0]), [&](int64_t begin, int64_t end) {
      internal::ForItems(first, begin, end, [&](size_t t, int64_t b) {
        NormsPass1Blocks(RuleFor(rules, t), refs[t], b, b + 1,
                         partials.data() + (first[t] + b) * kNorms);
      });
    });
    std::vector<Step> steps;
    steps.reserve(tensors.size());
    for (size_t t = 0; t < tensors.size(); ++t) {
      steps.push_back(NormsFinish(RuleFor(rules, t), partials.data() + first[t] * kNorms,
                                  first[t + 1] - first[t]));
    }
    parallel_for(first.back(), NormsPass2Cost(refs[0]), [&](int64_t begin, int64_t end) {
      internal::ForItems(first, begin, end, [&](size_t t, int64_t b) {
        NormsPass2Blocks(RuleFor(rules, t), refs[t], b, b + 1, steps[t]);
      });
    });
  }
};

// The multi-tensor driver that matches a single-variable driver policy.
template <typename Driver>
struct MultiDriverFor;
template <>
struct MultiDriverFor<Dense> {
  using type = MultiDense;
};
template <>
struct MultiDriverFor<WithNorms> {
  using type = MultiWithNorms;
};

}  // namespace cpu
}  // namespace kerasopt
