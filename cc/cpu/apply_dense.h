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
// The slots may be stored in a wider type S than the weight's T (float32 slots
// for a bfloat16 or float16 weight, the optimizers' `slot_dtype="float32"`):
// they are widened and narrowed like the weight, so only the weight is rounded
// to 16 bits. S = T everywhere else.
//
// When the storage types are the compute type (float, double), staging would
// only copy: the rule then runs on the memory directly (restrict-qualified, so
// it still vectorizes), with any absent slot on a zeroed scratch row per block.
// Same rule, same arithmetic, so the same bits as the staged loop.
//
// The loops are compiled twice, for the baseline ISA and for AVX2 + F16C, and
// DenseRange runs one, picked at run time (cc/cpu/isa.h's WithBestIsa); both
// round identically.
//
// `parallel_for(n, cost_per_element, fn(begin, end))` splits the range over
// threads: TensorFlow's CPU thread pool in the op, a plain loop in the NumPy
// binding. Each element is independent, so results do not depend on the split.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "cc/cpu/float16_bits.h"
#include "cc/cpu/isa.h"
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
// 16-bit floats go through cc/cpu/float16_bits.h (the same bits as their
// own conversions, in loops that vectorize).
template <typename T, typename C>
KERASOPT_ALWAYS_INLINE void Widen(const T* src, int64_t len, C* dst) {
  if constexpr (LayoutOf<T>() != Float16Layout::kNone && std::is_same_v<C, float>) {
    Float16ToFloat(src, len, dst);
  } else {
    for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<C>(src[j]);
  }
}
template <typename T, typename C>
KERASOPT_ALWAYS_INLINE void Narrow(const C* src, int64_t len, T* dst) {
  if constexpr (LayoutOf<T>() != Float16Layout::kNone && std::is_same_v<C, float>) {
    FloatToFloat16(src, len, dst);
  } else {
    for (int64_t j = 0; j < len; ++j) dst[j] = static_cast<T>(src[j]);
  }
}

// Slot buffers are rows of kBlock elements: row k starts at s + k * kBlock.
// Widens elements [start, start + len) of each present slot into its row; an
// absent slot (nullptr) gets zeros.
template <typename T, typename C, std::size_t N>
KERASOPT_ALWAYS_INLINE void WidenSlots(const std::array<T*, N>& slots, int64_t start, int64_t len,
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
KERASOPT_ALWAYS_INLINE void NarrowSlots(const C* s, int64_t start, int64_t len,
                        const std::array<T*, N>& slots) {
  for (std::size_t k = 0; k < N; ++k) {
    if (slots[k] != nullptr) Narrow(s + k * kBlock, len, slots[k] + start);
  }
}

template <typename Rule, typename C, std::size_t... I>
KERASOPT_ALWAYS_INLINE void RunBlock(const Rule& rule, int64_t len, C* w,
                     C (*slots)[kBlock], const C* g,
                     std::index_sequence<I...>) {
  for (int64_t j = 0; j < len; ++j) {
    rule(w[j], slots[I][j]..., g[j]);
  }
}

// The rule straight on the memory (storage type == compute type). Each
// element's weight and slots are loaded into locals, updated there and stored
// back: GCC drops `__restrict` on a parameter pack, so with the rule working
// through references into memory it had to reload m after storing v (they
// might alias), and buffers at the same offset modulo 4 KiB (every large
// page-aligned tensor) then stalled each such load behind the store: float32
// Adam, 8M elements on one core, 12.6 -> 9.2-10.9 ms. Locals live in
// registers and leave the same bits; every slot is stored back (unchanged
// ones too, which costs nothing here: the optimizers pass a slot only when its
// rule's flags update it, e.g. v_hat only with amsgrad).
template <typename Rule, typename T, typename S, std::size_t... I>
KERASOPT_ALWAYS_INLINE void RunDirectAt(const Rule& rule, int64_t begin, int64_t len,
                                        T* var, const std::array<S*, Rule::kNumSlots>& slots,
                                        const T* grad, std::index_sequence<I...>) {
  T* __restrict w = var + begin;
  const T* __restrict g = grad + begin;
  S* const s[] = {(slots[I] + begin)...};
  for (int64_t j = 0; j < len; ++j) {
    T w_j = w[j];
    S s_j[] = {s[I][j]...};
    rule(w_j, s_j[I]..., g[j]);
    w[j] = w_j;
    ((s[I][j] = s_j[I]), ...);
  }
}

// True when every slot was passed (absent ones are nullptr).
template <typename T, std::size_t N>
KERASOPT_ALWAYS_INLINE bool AllPresent(const std::array<T*, N>& slots) {
  for (T* s : slots) {
    if (s == nullptr) return false;
  }
  return true;
}

// Elements [begin, end) of one variable; the body of both ISA copies.
template <typename Rule, typename T, typename S>
KERASOPT_ALWAYS_INLINE void DenseRangeBody(const Rule& rule_in, T* var,
                                           const std::array<S*, Rule::kNumSlots>& slots,
                                           const T* grad, int64_t begin, int64_t end) {
  // A local copy: its flags (amsgrad, nesterov, ...) are then plainly
  // loop-invariant, and the compiler gives each combination its own
  // vectorized loop (with the rule behind a reference, RMSprop and AdamW's
  // loops stayed scalar).
  const Rule rule = rule_in;
  using C = ComputeType<T>;
  constexpr int kSlots = Rule::kNumSlots;
  if constexpr (std::is_same_v<T, C> && std::is_same_v<S, C>) {
    if (AllPresent(slots)) {
      RunDirectAt(rule, begin, end - begin, var, slots, grad,
                  std::make_index_sequence<kSlots>());
      return;
    }
    // Some slots absent: the rest stay in place and each absent one runs on a
    // zeroed scratch row, block by block (what the staged loop gives it too).
    alignas(64) C absent[kRows<kSlots>][kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t len = std::min(kBlock, end - start);
      std::array<C*, kSlots> rows;
      for (int k = 0; k < kSlots; ++k) {
        if (slots[k] != nullptr) {
          rows[k] = slots[k] + start;
        } else {
          std::fill(absent[k], absent[k] + len, C(0));
          rows[k] = absent[k];
        }
      }
      RunDirectAt(rule, 0, len, var + start, rows, grad + start,
                  std::make_index_sequence<kSlots>());
    }
    return;
  }
  alignas(64) C w[kBlock];
  alignas(64) C g[kBlock];
  alignas(64) C s[kRows<Rule::kNumSlots>][kBlock];
  for (int64_t start = begin; start < end; start += kBlock) {
    const int64_t len = std::min(kBlock, end - start);
    Widen(var + start, len, w);
    Widen(grad + start, len, g);
    WidenSlots(slots, start, len, &s[0][0]);
    RunBlock(rule, len, w, s, g, std::make_index_sequence<kSlots>());
    Narrow(w, len, var + start);
    NarrowSlots(&s[0][0], start, len, slots);
  }
}

}  // namespace internal

// Approximate cycles per element, for the thread pool's sharding decision.
inline int64_t DenseCostPerElement(int num_arrays) { return 4 * num_arrays + 8; }

// Updates elements [begin, end) of one variable on this thread; slots stored
// as S (T, or float for 16-bit T).
template <typename Rule, typename T, typename S>
inline void DenseRange(const Rule& rule, T* var,
                       const std::array<S*, Rule::kNumSlots>& slots, const T* grad,
                       int64_t begin, int64_t end) {
  WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
    internal::DenseRangeBody(rule, var, slots, grad, begin, end);
  });
}

template <typename Rule, typename T, typename S, typename ParallelFor>
void ApplyDense(const Rule& rule, int64_t n, T* var,
                const std::array<S*, Rule::kNumSlots>& slots, const T* grad,
                ParallelFor&& parallel_for) {
  int num_present = 0;
  for (S* s : slots) num_present += s != nullptr;
  const int64_t cost = DenseCostPerElement(2 * (2 + num_present));
  parallel_for(n, cost, [&](int64_t begin, int64_t end) {
    DenseRange(rule, var, slots, grad, begin, end);
  });
}

// The driver policy of ApplyDense, for code that is generic over drivers
// (cc/tf/dense_apply_op.h, cc/python/binding.h).
struct Dense {
  // Slots may be stored wider than the weight (see the top of this file); the
  // other single-variable drivers take slots of the weight's type only.
  static constexpr bool kTakesWideSlots = true;

  template <typename Rule, typename T, typename S, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<S*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyDense(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
