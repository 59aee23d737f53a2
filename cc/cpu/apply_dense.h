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
    // At least one row so the array is never zero-sized.
    alignas(64) C s[kSlots > 0 ? kSlots : 1][kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      for (int64_t j = 0; j < len; ++j) w[j] = static_cast<C>(var[start + j]);
      for (int64_t j = 0; j < len; ++j) g[j] = static_cast<C>(grad[start + j]);
      for (int k = 0; k < kSlots; ++k) {
        if (slots[k] != nullptr) {
          const T* src = slots[k] + start;
          for (int64_t j = 0; j < len; ++j) s[k][j] = static_cast<C>(src[j]);
        } else {
          std::fill(s[k], s[k] + len, C(0));
        }
      }
      internal::RunBlock(rule, len, w, s, g, std::make_index_sequence<kSlots>());
      for (int64_t j = 0; j < len; ++j) var[start + j] = static_cast<T>(w[j]);
      for (int k = 0; k < kSlots; ++k) {
        if (slots[k] == nullptr) continue;
        T* dst = slots[k] + start;
        for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<T>(s[k][j]);
      }
    }
  });
}

}  // namespace cpu
}  // namespace kerasopt
