// Runs Adafactor's rule (cc/kernels/adafactor.h, Driver::kFactored) over one
// variable on the CPU. Its second moment of a matrix is factored into row and
// column statistics, and its step is clipped by the RMS of the whole update,
// so it is not one pass over the elements but three:
//
//   pass 1 (rank >= 2 only), per chunk of kRowsPerChunk rows of each matrix
//          [..., n, m]: G2 = g^2 + epsilon_1 in double; each row's sum by the
//          block tree; the chunk's column sums in row order. Then the column
//          sums are the chunk sums in chunk order, and r, c and mean(r) are
//          updated (small: one value per row and per column).
//   pass 2, per block of kBlock elements of the flat variable: v (from r, c,
//          or the moving average for rank < 2) written to `velocity`,
//          u = g / sqrt(v), and the block's sums of w^2 and u^2.
//   between: alpha and the clip from the sums, added in block order.
//   pass 3, per block: u again, w -= alpha * (u / clip).
//
// Every sum is taken in a fixed order whatever the thread split (the thread
// pool shares out whole chunks and blocks; the partial sums are added on one
// thread in order), so the bits are the same for 1 thread or 64, and the same
// as kerasopt/fallback/adafactor.py's (see the header for the orders).
//
// Pass 3 recomputes u instead of keeping it: for rank >= 2 from r and c (a
// product and a square root per element, cheaper than reading back v), kept
// unrounded in compute-type buffers (for 16-bit variables the fallback, too,
// computes v from the values before they are rounded to the slots); for rank
// < 2 from the stored v (float, double) or, for 16-bit storage, from u kept
// in a compute-type buffer in pass 2. Float and double memory is used in
// place; 16-bit memory is staged per block (apply_dense.h's Widen/Narrow).
// The loops are compiled for the baseline ISA and AVX2 (isa.h), which round
// alike.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

// One variable as the factored driver sees it. Rank >= 2 (`factored`):
// `batch` matrices of rows x cols (the leading axes flattened), r [batch,
// rows], c [batch, cols]; rank < 2: the variable is n elements, r and c
// unused. (Not r != nullptr: an empty tensor's data may be null, and an
// empty matrix still updates its r or c.)
template <typename T>
struct FactoredTensor {
  int64_t n;
  bool factored;
  int64_t batch, rows, cols;
  T* var;
  const T* grad;
  T* velocity;
  T* r;
  T* c;
};

namespace internal {

// Sum of t[0..len), in double, by the fixed halving tree over kBlock terms
// (the tail padded with zeros): apply_with_norms.h's tree, on plain terms.
KERASOPT_ALWAYS_INLINE double BlockSum(const double* __restrict t, int64_t len) {
  constexpr int64_t kHalf = kBlock / 2;
  alignas(64) double s[kHalf];
  if (len == kBlock) {  // (the padded loop below does not vectorize)
    for (int64_t j = 0; j < kHalf; ++j) s[j] = t[j] + t[j + kHalf];
  } else {
    for (int64_t j = 0; j < kHalf; ++j) {
      const double a = j < len ? t[j] : 0.0;
      const double b = j + kHalf < len ? t[j + kHalf] : 0.0;
      s[j] = a + b;
    }
  }
  for (int64_t h = kHalf / 2; h >= 1; h /= 2) {
    for (int64_t j = 0; j < h; ++j) s[j] = s[j] + s[j + h];
  }
  return s[0];
}

// Sum of t[0..len) by blocks of kBlock from t[0], the blocks in order.
KERASOPT_ALWAYS_INLINE double SumByBlocks(const double* t, int64_t len) {
  double total = 0;
  for (int64_t start = 0; start < len; start += kBlock) {
    total = total + BlockSum(t + start, std::min(kBlock, len - start));
  }
  return total;
}

// Pass 1 on one chunk of rows [first_row, last_row) of matrix b: each row's
// sum of G2 into row_sums, the chunk's column sums into col_partial[cols].
// `terms` is scratch of cols doubles.
template <typename Rule, typename T>
KERASOPT_ALWAYS_INLINE void RowChunk(const Rule& rule, const FactoredTensor<T>& x, int64_t b,
                                     int64_t first_row, int64_t last_row,
                                     double* __restrict terms, double* __restrict row_sums,
                                     double* __restrict col_partial) {
  using C = ComputeType<T>;
  const int64_t m = x.cols;
  std::fill(col_partial, col_partial + m, 0.0);
  for (int64_t row = first_row; row < last_row; ++row) {
    const T* __restrict g = x.grad + (b * x.rows + row) * m;
    for (int64_t j = 0; j < m; ++j) {
      terms[j] = static_cast<double>(rule.Regulated(static_cast<C>(g[j])));
    }
    for (int64_t j = 0; j < m; ++j) col_partial[j] = col_partial[j] + terms[j];
    row_sums[row] = SumByBlocks(terms, m);
  }
}

// The factored v of elements [start, start + len) of the flat variable:
// runs of one row each, v = (r_i / mean(r)) * c_j (Keras's grouping).
template <typename Rule, typename C>
KERASOPT_ALWAYS_INLINE void FactoredVelocity(int64_t rows, int64_t cols, const C* __restrict r,
                                             const C* __restrict c, const C* __restrict r_mean,
                                             int64_t start, int64_t len, C* __restrict v) {
  const int64_t matrix = rows * cols;
  int64_t k = start;
  const int64_t end = start + len;
  while (k < end) {
    const int64_t b = k / matrix;
    const int64_t row = (k - b * matrix) / cols;
    const int64_t col = k - b * matrix - row * cols;
    const int64_t run = std::min(end - k, cols - col);
    const C scale = r[b * rows + row] / r_mean[b];
    const C* __restrict c_row = c + b * cols + col;
    C* __restrict out = v + (k - start);
    for (int64_t j = 0; j < run; ++j) out[j] = scale * c_row[j];
    k += run;
  }
}

template <typename Rule, typename C>
KERASOPT_ALWAYS_INLINE void Directions(int64_t len, const C* __restrict g, const C* __restrict v,
                                       C* __restrict u) {
  for (int64_t j = 0; j < len; ++j) u[j] = Rule::Direction(g[j], v[j]);
}

// u / clip is u itself when clip == 1 (RMS(u) <= clip_threshold, the usual
// case): that loop skips the division, with the same bits.
template <typename Rule, typename C, typename Step>
KERASOPT_ALWAYS_INLINE void ApplyBlock(int64_t len, C* __restrict w, const C* __restrict u,
                                       const Step& step) {
  if (step.clip == C(1)) {
    Step unclipped = step;
    unclipped.clip = C(1);
    for (int64_t j = 0; j < len; ++j) Rule::ApplyUnclipped(w[j], u[j], unclipped);
  } else {
    for (int64_t j = 0; j < len; ++j) Rule::Apply(w[j], u[j], step);
  }
}

// Rank < 2: v = beta v + (1 - beta) G2, then u.
template <typename Rule, typename C>
KERASOPT_ALWAYS_INLINE void AverageAndDirections(const Rule& rule, int64_t len,
                                                 const C* __restrict g, C* __restrict v,
                                                 C* __restrict u) {
  for (int64_t j = 0; j < len; ++j) {
    const C vj = rule.Average(v[j], rule.Regulated(g[j]));
    v[j] = vj;
    u[j] = Rule::Direction(g[j], vj);
  }
}

// Pass 2 reads w only in the sum of w^2, a loop of its own after the v and u
// loop, and there the hardware prefetcher did not keep up: asking for the w of
// the block kPrefetchBlocks ahead took a step of one 8M vector from 12-13 to
// 8.5-9.5 ms of CPU time (a standalone build of this driver, one thread; 1 to
// 8 blocks ahead did the same; the bits are unchanged). Prefetches do not
// fault, but only blocks of this variable are named.
constexpr int64_t kPrefetchBlocks = 2;

template <typename T>
KERASOPT_ALWAYS_INLINE void PrefetchBlock(const T* block, int64_t len) {
#if defined(__GNUC__) || defined(__clang__)
  const char* bytes = reinterpret_cast<const char*>(block);
  const int64_t size = len * static_cast<int64_t>(sizeof(T));
  for (int64_t at = 0; at < size; at += 64) __builtin_prefetch(bytes + at);
#else
  (void)block;
  (void)len;
#endif
}

}  // namespace internal

// What pass 1 leaves for passes 2 and 3: r and c after the update, unrounded,
// and mean(r) per matrix (empty for rank < 2).
template <typename C>
struct FactoredStatistics {
  std::vector<C> r, c, r_mean;
};

// Pass 1 and the statistics' update (rank >= 2).
template <typename Rule, typename T, typename ParallelFor>
FactoredStatistics<ComputeType<T>> UpdateStatistics(const Rule& rule, const FactoredTensor<T>& x,
                                                    ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  const int64_t n = x.rows, m = x.cols;
  const int64_t chunks = (n + Rule::kRowsPerChunk - 1) / Rule::kRowsPerChunk;
  std::vector<double> row_sums(static_cast<size_t>(x.batch * n));
  // col_partial[(b * chunks + k) * m + j]: chunk k of matrix b, column j.
  std::vector<double> col_partial(static_cast<size_t>(x.batch * chunks * m));
  parallel_for(x.batch * chunks, Rule::kRowsPerChunk * DenseCostPerElement(3) * m,
               [&](int64_t first, int64_t last) {
                 std::vector<double> terms(static_cast<size_t>(m));
                 WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
                   for (int64_t item = first; item < last; ++item) {
                     const int64_t b = item / chunks, k = item % chunks;
                     const int64_t first_row = k * Rule::kRowsPerChunk;
                     const int64_t last_row = std::min(n, first_row + Rule::kRowsPerChunk);
                     internal::RowChunk(rule, x, b, first_row, last_row, terms.data(),
                                        row_sums.data() + b * n, col_partial.data() + item * m);
                   }
                 });
               });
  FactoredStatistics<C> s;
  s.r.resize(static_cast<size_t>(x.batch * n));
  s.c.resize(static_cast<size_t>(x.batch * m));
  s.r_mean.resize(static_cast<size_t>(x.batch));
  // The column sums: the chunks in order, per column (one thread per range of columns).
  parallel_for(x.batch * m, DenseCostPerElement(2) * (chunks + 1), [&](int64_t first, int64_t last) {
    for (int64_t item = first; item < last; ++item) {
      const int64_t b = item / m, j = item % m;
      double total = 0;
      for (int64_t k = 0; k < chunks; ++k) total = total + col_partial[(b * chunks + k) * m + j];
      const C fresh = Rule::Mean(total, n);
      s.c[item] = rule.Average(static_cast<C>(x.c[item]), fresh);
      x.c[item] = static_cast<T>(s.c[item]);
    }
  });
  std::vector<double> r_terms(static_cast<size_t>(n));
  for (int64_t b = 0; b < x.batch; ++b) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = b * n + i;
      s.r[at] = rule.Average(static_cast<C>(x.r[at]), Rule::Mean(row_sums[at], m));
      x.r[at] = static_cast<T>(s.r[at]);
      r_terms[i] = static_cast<double>(s.r[at]);
    }
    s.r_mean[b] = Rule::Mean(internal::SumByBlocks(r_terms.data(), n), n);
  }
  return s;
}

template <typename Rule, typename T, typename ParallelFor>
void ApplyFactored(const Rule& rule_in, const FactoredTensor<T>& x, ParallelFor&& parallel_for) {
  using C = ComputeType<T>;
  constexpr bool kInPlace = std::is_same_v<T, C>;
  if (x.n == 0 && !x.factored) return;
  FactoredStatistics<C> stats;
  if (x.factored) stats = UpdateStatistics(rule_in, x, parallel_for);
  if (x.n == 0) return;  // (an empty matrix still updates r or c: Keras's means of nothing)
  const C* r = stats.r.data();
  const C* c = stats.c.data();
  const C* r_mean = stats.r_mean.data();
  const int64_t num_blocks = (x.n + kBlock - 1) / kBlock;
  // partials[2 * b + k]: block b's sum of w^2 (k = 0) and u^2 (k = 1).
  std::vector<double> partials(static_cast<size_t>(2 * num_blocks));
  // Rank < 2 with 16-bit storage: u from pass 2 (v is rounded when stored).
  std::vector<C> carried(!kInPlace && !x.factored ? static_cast<size_t>(x.n) : 0);

  parallel_for(num_blocks, kBlock * DenseCostPerElement(6), [&](int64_t first, int64_t last) {
    WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
      const Rule rule = rule_in;  // local: its fields are plainly loop-invariant
      alignas(64) C u[kBlock];
      alignas(64) C w_buf[kBlock];
      alignas(64) C g_buf[kBlock];
      alignas(64) C v_buf[kBlock];
      for (int64_t b = first; b < last; ++b) {
        const int64_t start = b * kBlock;
        const int64_t len = std::min(kBlock, x.n - start);
        if (b + internal::kPrefetchBlocks < last) {
          const int64_t ahead = start + internal::kPrefetchBlocks * kBlock;
          internal::PrefetchBlock(x.var + ahead, std::min(kBlock, x.n - ahead));
        }
        const C* w;
        const C* g;
        C* v;
        if constexpr (kInPlace) {
          w = x.var + start;
          g = x.grad + start;
          v = x.velocity + start;
        } else {
          internal::Widen(x.var + start, len, w_buf);
          internal::Widen(x.grad + start, len, g_buf);
          if (!x.factored) internal::Widen(x.velocity + start, len, v_buf);
          w = w_buf;
          g = g_buf;
          v = v_buf;
        }
        if (x.factored) {
          internal::FactoredVelocity<Rule>(x.rows, x.cols, r, c, r_mean, start, len, v);
          internal::Directions<Rule>(len, g, v, u);
        } else {
          internal::AverageAndDirections(rule, len, g, v, u);
          if constexpr (!kInPlace) std::copy(u, u + len, carried.data() + start);
        }
        if constexpr (!kInPlace) internal::Narrow(v_buf, len, x.velocity + start);
        partials[2 * b] = internal::BlockSumOfSquares(w, len);
        partials[2 * b + 1] = internal::BlockSumOfSquares(u, len);
      }
    });
  });

  const auto step = rule_in.Finish(internal::SumInBlockOrder<2>(partials.data(), num_blocks));

  parallel_for(num_blocks, kBlock * DenseCostPerElement(5), [&](int64_t first, int64_t last) {
    WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
      alignas(64) C u[kBlock];
      alignas(64) C w_buf[kBlock];
      alignas(64) C g_buf[kBlock];
      alignas(64) C v_buf[kBlock];
      for (int64_t b = first; b < last; ++b) {
        const int64_t start = b * kBlock;
        const int64_t len = std::min(kBlock, x.n - start);
        C* w;
        const C* g;
        if constexpr (kInPlace) {
          w = x.var + start;
          g = x.grad + start;
        } else {
          internal::Widen(x.var + start, len, w_buf);
          internal::Widen(x.grad + start, len, g_buf);
          w = w_buf;
          g = g_buf;
        }
        const C* direction = u;
        if (x.factored) {
          internal::FactoredVelocity<Rule>(x.rows, x.cols, r, c, r_mean, start, len, v_buf);
          internal::Directions<Rule>(len, g, v_buf, u);
        } else if constexpr (kInPlace) {
          internal::Directions<Rule>(len, g, x.velocity + start, u);
        } else {
          direction = carried.data() + start;
        }
        internal::ApplyBlock<Rule>(len, w, direction, step);
        if constexpr (!kInPlace) internal::Narrow(w_buf, len, x.var + start);
      }
    });
  });
}

}  // namespace cpu
}  // namespace kerasopt
