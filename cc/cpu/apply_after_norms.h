// Runs a rule whose per-element step is scaled by norms over the WHOLE
// variable of inputs it does not change (LARS: ||w|| and ||g||), on the CPU:
//
//   pass 1, per element:  rule.NormTerms(w, g, t)     the K terms whose squares
//                                                      are summed (reads w, g)
//   between the passes:   scale = rule.Finish(sums)   sums[k] = sum t_k^2
//   pass 2, per element:  rule(w, slots..., g, scale) one dense pass
//                                                      (cc/cpu/apply_dense.h)
//
// Unlike apply_with_norms.h (LAMB, whose norm is of a term the slots produce),
// pass 1 writes nothing, and pass 2 updates the slots and the weight in one go.
// A rule whose NeedsNorms() is false for this call skips pass 1 (Finish is then
// called with zero sums).
//
// The two passes, and their multi-tensor form, are apply_norms_then_dense.h's
// (shared with apply_layerwise.h); its Stage is cc/kernels/norm_stages.h's
// AfterNormsStage.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "cc/cpu/apply_multi.h"
#include "cc/cpu/apply_norms_then_dense.h"
#include "cc/kernels/norm_stages.h"

namespace kerasopt {
namespace cpu {

template <typename Rule, typename T, typename ParallelFor>
void ApplyAfterNorms(const Rule& rule, int64_t n, T* var,
                     const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                     ParallelFor&& parallel_for) {
  ApplyNormsThenDense<AfterNormsStage>(rule, n, var, slots, grad,
                                       std::forward<ParallelFor>(parallel_for));
}

// The driver policy of ApplyAfterNorms (see cpu::Dense in apply_dense.h).
struct AfterNorms {
  template <typename Rule, typename T, typename ParallelFor>
  static void Apply(const Rule& rule, int64_t n, T* var,
                    const std::array<T*, Rule::kNumSlots>& slots, const T* grad,
                    ParallelFor&& parallel_for) {
    ApplyAfterNorms(rule, n, var, slots, grad, std::forward<ParallelFor>(parallel_for));
  }
};

template <>
struct MultiDriverFor<AfterNorms> {
  using type = MultiNormsThenDense<AfterNormsStage>;
};

}  // namespace cpu
}  // namespace kerasopt
