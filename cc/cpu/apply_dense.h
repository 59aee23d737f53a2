// Runs an update rule over dense memory on the CPU: one pass that reads the
// weight, the gradient and each slot once and writes the weight and the slots
// once.
//
// Work is done in cache-resident blocks: a block of each array is widened into
// a local buffer of the compute type, the rule runs over the buffers (a loop
// the compiler vectorizes, since local buffers cannot alias), and the results
// are narrowed back. The same code thus serves float, double, half and
// bfloat16 storage. Absent slots (e.g. AMSGrad's v_hat when amsgrad=false) are
// given a scratch buffer that is never written back.
//
// `parallel_for(n, cost_per_element, fn(begin, end))` splits the range over
// threads: TensorFlow's CPU thread pool in the op, a plain loop in the NumPy
// binding. Each element is independent, so results do not depend on the split.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

constexpr int64_t kBlock = 512;

namespace internal {

// Rows of a block's slot buffer: at least one, so it is never zero-sized.
template <int N>
constexpr int kRows = N > 0 ? N : 1;

// Block staging, shared by the drivers in this directory: widen `len` elements
// of storage into a compute-type buffer, and narrow them back.
template <typename T, typename C>
inline void Widen(const T* src, int64_t len, C* dst) {
  for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<C>(src[j]);
}
template <typename T, typename C>
inline void Narrow(const C* src, int64_t len, T* dst) {
  for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<T>(src[j]);
}

// Slot buffers are rows of kBlock elements: row k starts at s + k * kBlock.
// Widens elements [start, start + len) of each present slot into its row; an
// absent slot (nullptr) gets zeros.
template <typename T, typename C, std::size_t N>
inline void WidenSlots(const std::array<T*, N>& slots, int64_t start, int64_t len,
                       C* s) {
  for (std::size_t k = 0; k < N; ++k) {
    C* row = s + k * kBlock;
    if (slots[k] != nullptr) {
      Widen(slots[k] + start, len, row);
    } else {
      std::fill(row, row + len, C(0));
    }
  }
}

// Narrows each row back into its slot; absent slots are never written.
template <typename T, typename C, std::size_t N>
inline void NarrowSlots(const C* s, int64_t start, int64_t len,
                        const std::array<T*, N>& slots) {
  for (std::size_t k = 0; k < N; ++k) {
    if (slots[k] != nullptr) Narrow(s + k * kBlock, len, slots[k] + start);
  }
}

template <typename Rule, typename C, std::size_t... I>
inline void RunBlock(const Rule& rule, int64_t len, C* w,
                     C (*slots)[kBlock], const C* g,
                     std::index_sequence<I...>) {
  for (int64_t j = 0; j < len; ++j) {
    rule(w[j], slots[I][j]..., g[j]);
  }
}

}  // namespace internal

// Approximate cycles per element, for the thread pool's sharding decision.
inline int64_t DenseCostPerElement(int num_arrays) { return 4 * num_arrays + 8; }

template <typename Rule, typename T, typename ParallelFor>
void ApplyDense(const Rule& rule, int64_t n, T* var,
                const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr int kSlots = Rule::kNumSlots;
  int num_present = 0;
  for (T* s : slots) num_present += s != nullptr;
  const int64_t cost = DenseCostPerElement(2 * (2 + num_present));

  parallel_for(n, cost, [&](int64_t begin, int64_t end) {
    alignas(64) C w[kBlock];
    alignas(64) C g[kBlock];
    alignas(64) C s[internal::kRows<Rule::kNumSlots>][kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      internal::Widen(var + start, len, w);
      internal::Widen(grad + start, len, g);
      internal::WidenSlots(slots, start, len, &s[0][0]);
      internal::RunBlock(rule, len, w, s, g, std::make_index_sequence<kSlots>());
      internal::Narrow(w, len, var + start);
      internal::NarrowSlots(&s[0][0], start, len, slots);
    }
  });
}

// The driver policy of ApplyDense, for code that is generic over drivers
// (cc/tf/dense_apply_op.h, cc/python/binding.h).
struct Dense {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyDense(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
