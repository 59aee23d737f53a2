// Runs a rule with layer-wise (per-variable) state on the CPU: NovoGrad's
// second moment is one scalar per variable, driven by ||g||^2 over the whole
// variable. Two passes over the memory:
//
//   pass 1: sum of g^2 over the variable      (reads g)
//   then:   layer = rule.Finish(sum, layer_slots)   updates the per-variable
//                                                   slots (scalars)
//   pass 2, per element: rule(w, slots..., g, layer)  (reads w, g, slots;
//                                                      writes w, slots)
//
// Slots: the first Rule::kNumSlots - Rule::kNumLayerSlots have the variable's
// shape; the trailing kNumLayerSlots point at ONE element each (shape ()).
// They are widened to the compute type for Finish and narrowed back once.
//
// The two passes, and their multi-tensor form, are apply_norms_then_dense.h's
// (shared with apply_after_norms.h); this file says what layer-wise rules put
// in them. The sum is deterministic for any number of threads, so
// kerasopt/fallback/lamb.py's sum_of_squares gives the same bits.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "cc/cpu/apply_multi.h"
#include "cc/cpu/apply_norms_then_dense.h"
#include "cc/kernels/common.h"

namespace kerasopt {
namespace cpu {

// The Stage (see apply_norms_then_dense.h) of a rule with kNumLayerSlots,
// Finish(sum_of_g_squared, layer_values) -> layer and operator()(w,
// element_slots..., g, layer).
template <typename Rule>
struct LayerwiseStage {
  static constexpr int kNumNorms = 1;  // ||g||
  static constexpr bool kReadsWeight = false;
  static constexpr int kNumLayerSlots = Rule::kNumLayerSlots;
  static constexpr int kNumDenseSlots = Rule::kNumSlots - kNumLayerSlots;
  static_assert(kNumLayerSlots > 0 && kNumDenseSlots >= 0, "Layerwise needs layer slots");

  static bool NeedsNorms(const Rule&) { return true; }
  template <typename C>
  KERASOPT_ALWAYS_INLINE static void Terms(const Rule&, C, C g, C* terms) { terms[0] = g; }
  // Reads the layer slots, lets the rule update them, and writes them back.
  template <typename T>
  static auto Finish(const Rule& rule, const std::array<double, kNumNorms>& sums,
                     const std::array<T*, Rule::kNumSlots>& slots) {
    std::array<ComputeType<T>, kNumLayerSlots> values{};
    for (int k = 0; k < kNumLayerSlots; ++k) {
      values[k] = static_cast<ComputeType<T>>(*slots[kNumDenseSlots + k]);
    }
    auto layer = rule.Finish(sums[0], values);
    for (int k = 0; k < kNumLayerSlots; ++k) {
      *slots[kNumDenseSlots + k] = static_cast<T>(values[k]);
    }
    return internal::BoundRule<Rule, decltype(layer), kNumDenseSlots>{rule, layer};
  }
  template <typename T>
  static std::array<T*, kNumDenseSlots> DenseSlots(const std::array<T*, Rule::kNumSlots>& slots) {
    std::array<T*, kNumDenseSlots> element_slots{};
    for (int k = 0; k < kNumDenseSlots; ++k) element_slots[k] = slots[k];
    return element_slots;
  }
};

template <typename Rule, typename T, typename ParallelFor>
void ApplyLayerwise(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
  ApplyNormsThenDense<LayerwiseStage>(rule, n, var, slots, grad,
                                      std::forward<ParallelFor>(parallel_for));
}

// The driver policy of ApplyLayerwise (see cpu::Dense in apply_dense.h).
struct Layerwise {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyLayerwise(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

template <>
struct MultiDriverFor<Layerwise> {
  using type = MultiNormsThenDense<LayerwiseStage>;
};

}  // namespace cpu
}  // namespace kerasopt
