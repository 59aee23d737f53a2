// The shape shared by LARS (apply_after_norms.h) and NovoGrad
// (apply_layerwise.h): per variable,
//
//   pass 1, per element:  terms of inputs the rule does NOT change (w, g),
//                         their squares summed over the whole variable
//   between the passes:   a per-variable value from the sums (LARS: the
//                         layer's rate; NovoGrad: the new second moment, kept
//                         in the rule's scalar layer slots)
//   pass 2:               one dense pass (apply_dense.h) of the rule with that
//                         value bound as its last argument
//
// Pass 1 writes nothing, so pass 2 can update the weight and its slots in one
// go. The sums are those of apply_with_norms.h: squares in double, a fixed
// halving tree per block of kBlock elements counted from element 0, the block
// partials added in block order on one thread; so the result is the same for
// any number of threads, and kerasopt/fallback/lamb.py's sum_of_squares
// reproduces it. Pass 1 runs in the ISA copy cc/cpu/isa.h picks; pass 2 is
// ApplyDense's.
//
// Two drivers run this shape: ApplyNormsThenDense (one variable) and
// MultiNormsThenDense (a list of variables in one launch, behind the
// KerasoptMultiApply<Algo> ops). Both run the very same per-block pass 1 and
// the same per-range pass 2, so they give the same bits.
//
// What differs between rules is a Stage<Rule> (cc/kernels/norm_stages.h:
// AfterNormsStage for LARS, LayerwiseStage for NovoGrad), shared with the GPU
// driver.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/cpu/apply_multi.h"
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/common.h"
#include "cc/kernels/norm_stages.h"

namespace kerasopt {
namespace cpu {

namespace internal {

// The Stage's norm terms of len elements into rows of `terms`.
template <typename Stage, typename Rule, typename C>
KERASOPT_ALWAYS_INLINE void TermsOfInputs(const Rule& rule, int64_t len, const C* __restrict w,
                                          const C* __restrict g, C (*__restrict terms)[kBlock]) {
  for (int64_t j = 0; j < len; ++j) {
    C t[Stage::kNumNorms];
    Stage::Terms(rule, Stage::kReadsWeight ? w[j] : C(0), g[j], t);
    for (int k = 0; k < Stage::kNumNorms; ++k) terms[k][j] = t[k];
  }
}

// Stage::Finish with the layer slots (the rule's trailing ones) widened to
// the compute type, and narrowed back into the slots after. An absent layer
// slot (nullptr: its flag is off, e.g. NovoGrad's velocity_hat without
// amsgrad) reads as 0 and is not written.
template <typename Stage, typename Rule, typename T>
auto FinishStage(const Rule& rule, const std::array<double, Stage::kNumNorms>& sums,
                 const std::array<T*, Rule::kNumSlots>& slots) {
  using C = ComputeType<T>;
  constexpr int kLayer = Stage::kNumLayerSlots;
  constexpr int kDense = Stage::kNumDenseSlots;
  std::array<C, kRows<kLayer>> layer{};
  for (int k = 0; k < kLayer; ++k) {
    const T* slot = slots[kDense + k];
    layer[k] = slot != nullptr ? static_cast<C>(*slot) : C(0);
  }
  const auto bound = Stage::Finish(rule, sums, layer.data());
  for (int k = 0; k < kLayer; ++k) {
    if (slots[kDense + k] != nullptr) *slots[kDense + k] = static_cast<T>(layer[k]);
  }
  return bound;
}

// The slots pass 2 runs over: all but the layer slots.
template <typename Stage, typename T, std::size_t N>
std::array<T*, Stage::kNumDenseSlots> DenseSlotsOf(const std::array<T*, N>& slots) {
  std::array<T*, Stage::kNumDenseSlots> dense{};
  for (int k = 0; k < Stage::kNumDenseSlots; ++k) dense[k] = slots[k];
  return dense;
}

// Pass 1 on blocks [first, last) of one variable: stores block b's sums of
// squares of the Stage's terms in partials[(b - first) * kNumNorms + k]. The
// terms are taken from the memory itself when it holds the compute type.
template <typename Stage, typename Rule, typename T>
void InputNormsBlocks(const Rule& rule_in, int64_t n, const T* var, const T* grad, int64_t first,
                      int64_t last, double* partials) {
  WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
    const Rule rule = rule_in;
    using C = ComputeType<T>;
    constexpr int kNorms = Stage::kNumNorms;
    alignas(64) C w_buffer[kBlock];
    alignas(64) C g_buffer[kBlock];
    alignas(64) C t[kNorms][kBlock];
    for (int64_t b = first; b < last; ++b) {
      const int64_t start = b * kBlock;
      const int64_t len = std::min(kBlock, n - start);
      const C* w = w_buffer;
      const C* g = g_buffer;
      if constexpr (std::is_same_v<T, C>) {
        w = var + start;
        g = grad + start;
      } else {
        if constexpr (Stage::kReadsWeight) Widen(var + start, len, w_buffer);
        Widen(grad + start, len, g_buffer);
      }
      TermsOfInputs<Stage>(rule, len, w, g, t);
      for (int k = 0; k < kNorms; ++k) {
        partials[(b - first) * kNorms + k] = BlockSumOfSquares(t[k], len);
      }
    }
  });
}

template <typename Stage>
int64_t InputNormsCost() {
  return kBlock * DenseCostPerElement((Stage::kReadsWeight ? 2 : 1) * (1 + Stage::kNumNorms));
}

inline int64_t NumBlocks(int64_t n) { return (n + kBlock - 1) / kBlock; }

}  // namespace internal

template <template <typename> class Stage, typename Rule, typename T, typename ParallelFor>
void ApplyNormsThenDense(const Rule& rule, int64_t n, T* var,
                         const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                         ParallelFor&& parallel_for) {
  using S = Stage<Rule>;
  constexpr int kNorms = S::kNumNorms;
  static_assert(kNorms > 0, "ApplyNormsThenDense needs at least one norm");
  std::array<double, kNorms> sums{};
  if (S::NeedsNorms(rule)) {
    const int64_t num_blocks = internal::NumBlocks(n);
    std::vector<double> partials(static_cast<size_t>(num_blocks * kNorms));
    parallel_for(num_blocks, internal::InputNormsCost<S>(), [&](int64_t first, int64_t last) {
      internal::InputNormsBlocks<S>(rule, n, var, grad, first, last,
                                    partials.data() + first * kNorms);
    });
    sums = internal::SumInBlockOrder<kNorms>(partials.data(), num_blocks);
  }
  const auto dense_rule = internal::FinishStage<S>(rule, sums, slots);
  ApplyDense(dense_rule, n, var, internal::DenseSlotsOf<S>(slots), grad,
             std::forward<ParallelFor>(parallel_for));
}

// The multi-tensor form: pass 1 over the (variable, block) items of every
// variable that needs norms, one launch; each variable's sums added in its own
// block order; then pass 2 as MultiDense, one launch. Two launches in all,
// whatever the number of variables.
template <template <typename> class Stage>
struct MultiNormsThenDense {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const std::vector<Rule>& rules,
                    const std::vector<TensorRef<Rule, T>>& tensors,
                    ParallelFor&& parallel_for) {
    using S = Stage<Rule>;
    constexpr int kNorms = S::kNumNorms;
    if (tensors.empty()) return;
    const size_t num_tensors = tensors.size();
    // first_block[i]: number of the first pass-1 item of tensor i.
    std::vector<int64_t> first_block(num_tensors + 1, 0);
    for (size_t i = 0; i < num_tensors; ++i) {
      const int64_t blocks = S::NeedsNorms(RuleFor(rules, i)) ? internal::NumBlocks(tensors[i].n) : 0;
      first_block[i + 1] = first_block[i] + blocks;
    }
    std::vector<double> partials(static_cast<size_t>(first_block.back() * kNorms));
    if (first_block.back() > 0) {
      parallel_for(first_block.back(), internal::InputNormsCost<S>(), [&](int64_t begin, int64_t end) {
        internal::ForItems(first_block, begin, end, [&](size_t i, int64_t b) {
          const TensorRef<Rule, T>& x = tensors[i];
          internal::InputNormsBlocks<S>(RuleFor(rules, i), x.n, x.var, x.grad, b, b + 1,
                                        partials.data() + (first_block[i] + b) * kNorms);
        });
      });
    }

    using DenseRule = decltype(internal::FinishStage<S>(
        rules[0], std::array<double, kNorms>{}, tensors[0].slots));
    std::vector<DenseRule> dense_rules;
    std::vector<TensorRef<DenseRule, T>> dense_tensors;
    dense_rules.reserve(num_tensors);
    dense_tensors.reserve(num_tensors);
    for (size_t i = 0; i < num_tensors; ++i) {
      const TensorRef<Rule, T>& x = tensors[i];
      const auto sums = internal::SumInBlockOrder<kNorms>(
          partials.data() + first_block[i] * kNorms, first_block[i + 1] - first_block[i]);
      dense_rules.push_back(internal::FinishStage<S>(RuleFor(rules, i), sums, x.slots));
      dense_tensors.push_back({x.n, x.var, internal::DenseSlotsOf<S>(x.slots), x.grad});
    }
    MultiDense::Apply(dense_rules, dense_tensors, std::forward<ParallelFor>(parallel_for));
  }
};

}  // namespace cpu
}  // namespace kerasopt
