// Runs an update rule over the rows of a variable named by a sparse gradient
// (tf.IndexedSlices: `values` [num_indices, row...] and `indices` [num_indices]).
//
// The same per-element rules as the dense driver (cc/kernels/<algo>.h) run over
// the touched rows only, so the cost grows with the number of indices, not with
// the table size. Two steps:
//
//   1. GroupRows sorts the positions of `indices` by (row, position): each run
//      of equal rows is one group, with its positions in ascending order.
//   2. ApplySparse sums each group's gradient rows in that fixed order (in the
//      compute type, starting from 0, as tf.math.unsorted_segment_sum does on
//      the CPU), then runs the rule over the row with the summed gradient.
//
// Groups are spread over threads, and each row belongs to one group, so rows
// never race and the result does not depend on the thread count or the split.
// Indices are validated (FindBadIndex) before anything is written.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

// The position of the first index outside [0, num_rows), or -1 if all are in range.
template <typename Index>
int64_t FindBadIndex(const Index* indices, int64_t num_indices, int64_t num_rows) {
  for (int64_t i = 0; i < num_indices; ++i) {
    const int64_t row = static_cast<int64_t>(indices[i]);
    if (row < 0 || row >= num_rows) return i;
  }
  return -1;
}

// Distinct rows of a sparse gradient, in ascending order. Group k is the row
// indices[order[starts[k]]], named at positions order[starts[k] .. starts[k+1]).
struct RowGroups {
  std::vector<int64_t> order;
  std::vector<int64_t> starts;  // num_groups + 1 entries

  int64_t num_groups() const { return static_cast<int64_t>(starts.size()) - 1; }
};

template <typename Index>
RowGroups GroupRows(const Index* indices, int64_t num_indices) {
  RowGroups groups;
  groups.order.resize(num_indices);
  std::iota(groups.order.begin(), groups.order.end(), int64_t{0});
  // Ties broken by position: a total order, so the grouping is unique.
  std::sort(groups.order.begin(), groups.order.end(), [indices](int64_t a, int64_t b) {
    return indices[a] < indices[b] || (indices[a] == indices[b] && a < b);
  });
  groups.starts.reserve(num_indices + 1);
  for (int64_t i = 0; i < num_indices; ++i) {
    if (i == 0 || indices[groups.order[i]] != indices[groups.order[i - 1]]) {
      groups.starts.push_back(i);
    }
  }
  groups.starts.push_back(num_indices);
  return groups;
}

// A row's gradient as the sum of its values, nothing more (a plain step).
// The step's gradient features (clipping, the loss scale) plug in here
// instead: cc/kernels/step_features.h's RowGradientFeatures.
struct SummedValues {
  template <typename C>
  C Value(C v) const { return v; }
  template <typename C>
  C Sum(C g) const { return g; }
};

// Applies `rule` to each row named in `groups` with the summed gradient
// (`row_gradient.Value` of each value, summed, then `row_gradient.Sum`).
// `var` and the present slots are [num_rows, row_size] (row-major);
// `values` is [num_indices, row_size]. Indices must have been validated.
// Slots are stored as S: T, or float for a 16-bit T (see apply_dense.h).
template <typename Rule, typename T, typename S, typename Index, typename ParallelFor,
          typename RowGradient = SummedValues>
void ApplySparse(const Rule& rule, int64_t row_size, T* var,
                 const std::array<S*, Rule::kNumSlots>& slots, const T* values,
                 const Index* indices, const RowGroups& groups,
                 ParallelFor&& parallel_for, const RowGradient& row_gradient = {}) {
  using C = ComputeType<T>;
  constexpr int kSlots = Rule::kNumSlots;
  int num_present = 0;
  for (S* s : slots) num_present += s != nullptr;
  const int64_t num_groups = groups.num_groups();
  if (num_groups <= 0 || row_size == 0) return;
  const int64_t duplicates_per_row =
      (static_cast<int64_t>(groups.order.size()) + num_groups - 1) / num_groups;
  const int64_t cost =
      row_size * (DenseCostPerElement(2 * (1 + num_present)) + 4 * duplicates_per_row);

  parallel_for(num_groups, cost, [&](int64_t begin, int64_t end) {
    alignas(64) C w[kBlock];
    alignas(64) C g[kBlock];
    alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
    for (int64_t k = begin; k < end; ++k) {
      const int64_t* first = groups.order.data() + groups.starts[k];
      const int64_t* last = groups.order.data() + groups.starts[k + 1];
      const int64_t row_start = static_cast<int64_t>(indices[*first]) * row_size;
      for (int64_t start = 0; start < row_size; start += kBlock) {
        const int64_t len = std::min(kBlock, row_size - start);
        std::fill(g, g + len, C(0));
        for (const int64_t* p = first; p != last; ++p) {
          const T* src = values + *p * row_size + start;
          for (int64_t j = 0; j < len; ++j) g[j] += row_gradient.Value(static_cast<C>(src[j]));
        }
        for (int64_t j = 0; j < len; ++j) g[j] = row_gradient.Sum(g[j]);
        const int64_t offset = row_start + start;
        internal::Widen(var + offset, len, w);
        internal::WidenSlots(slots, offset, len, &s[0][0]);
        internal::RunBlock(rule, len, w, s, g, std::make_index_sequence<kSlots>());
        internal::Narrow(w, len, var + offset);
        internal::NarrowSlots(&s[0][0], offset, len, slots);
      }
    }
  });
}

}  // namespace cpu
}  // namespace kerasopt
