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
// (shared with apply_after_norms.h); its Stage is cc/kernels/norm_stages.h's
// LayerwiseStage. The sum is deterministic for any number of threads, so
// kerasopt/fallback/lamb.py's sum_of_squares gives the same bits.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "cc/cpu/apply_multi.h"
#include "cc/cpu/apply_norms_then_dense.h"
#include "cc/kernels/common.h"
#include "cc/kernels/norm_stages.h"

namespace kerasopt {
namespace cpu {

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
