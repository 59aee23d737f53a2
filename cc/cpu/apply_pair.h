// Runs an element-wise rule over two arrays of the same shape, `first` and
// `second` (Lookahead's slow and fast weights; an average and its weights),
// in one pass: blocks of both are widened to the compute type, the rule runs,
// `first` is narrowed back, and `second` too when Rule::kWritesSecond.
//
// Rules are `void operator()(C& first, C& second) const`. Each element is
// independent, so results do not depend on the thread split.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cc/cpu/apply_dense.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

template <typename Rule, typename T, typename ParallelFor>
void ApplyPair(const Rule& rule, int64_t n, T* first, T* second,
               ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  const int64_t cost = DenseCostPerElement(Rule::kWritesSecond ? 4 : 3);
  parallel_for(n, cost, [&](int64_t begin, int64_t end) {
    alignas(64) C a[kBlock];
    alignas(64) C b[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      internal::Widen(first + start, len, a);
      internal::Widen(second + start, len, b);
      for (int64_t j = 0; j < len; ++j) rule(a[j], b[j]);
      internal::Narrow(a, len, first + start);
      if constexpr (Rule::kWritesSecond) internal::Narrow(b, len, second + start);
    }
  });
}

}  // namespace cpu
}  // namespace kerasopt
