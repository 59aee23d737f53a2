// Keras's per-step passes around the update (Optimizer._backend_apply_gradients:
// gradient clipping, decoupled weight decay, the EMA of the weights), folded
// into the element-wise update itself, for every rule at once.
//
// The dense and multi-tensor ops take them as one float64 input, `features`
// (cc/tf/rule_ops.h): empty for a plain step (the rule alone runs), else the
// kNumStepFeatures values below (the multi-tensor op: one row per variable,
// or one row for all). The values are computed in Python exactly as Keras
// computes them (kerasopt/optimizers/step_features.py: the global norm, the
// clipnorm divisor, the EMA momentum of this step), so each element sees
// Keras's own arithmetic, in Keras's order:
//   g  = g / grad_unscale                        (loss scaling; 1: none)
//   g  = g * grad_multiplier                     (global_clipnorm's scale, or clipnorm)
//   g  = g / grad_divisor                        (clipnorm: max(||g||, clipnorm); 1: none)
//   g  = min(max(g, -clip_value), clip_value)    (clipvalue; 0: none)
//   w -= w * weight_decay * lr                   (decoupled_decay.h; 0: none / excluded)
//   (the rule's update of w and its slots with g)
//   avg = m * avg + (1 - m) * w                  (use_ema; m = ema_momentum, 0 on step 1)
//   w  = avg                                     (ema_overwrite: this step overwrites)
// The EMA average is one more slot after the rule's own (the op's
// `with_average` attr): Keras's own "<var>_average" variable, so checkpoints
// stay Keras's.
//
// Multiplying by 1 and dividing by 1 leave every float as it is, so those
// two run unconditionally; the others only when active (a branch on a
// loop-invariant flag, which the compilers hoist or turn into selects).
#pragma once

#include <cstddef>
#include <tuple>
#include <utility>

#include "cc/kernels/common.h"
#include "cc/kernels/decoupled_decay.h"

namespace kerasopt {

// The layout of the ops' `features` input.
enum StepFeature : int {
  kGradUnscale = 0,
  kGradMultiplier,
  kGradDivisor,
  kClipValue,
  kWeightDecay,
  kEmaMomentum,
  kEmaOverwrite,
  kNumStepFeatures,
};

// The per-element work around the rule, built from one row of `features`.
template <typename C>
struct StepFeatures {
  C unscale, multiplier, divisor, clip;
  DecoupledDecay<C> decay;
  C ema_momentum, ema_rest;  // m and 1 - m, as Keras rounds them
  bool unscaling, dividing, clipping, averaging, overwrite;

  // `values`: kNumStepFeatures values; `with_average`: the op got the EMA slot.
  static StepFeatures Make(const double* values, double learning_rate, long long num_elements,
                           bool with_average) {
    StepFeatures f;
    f.unscale = static_cast<C>(values[kGradUnscale]);
    f.unscaling = values[kGradUnscale] != 1.0;
    f.multiplier = static_cast<C>(values[kGradMultiplier]);
    f.divisor = static_cast<C>(values[kGradDivisor]);
    f.dividing = values[kGradDivisor] != 1.0;
    f.clip = static_cast<C>(values[kClipValue]);
    f.clipping = values[kClipValue] > 0.0;
    f.decay = DecoupledDecay<C>::Make(learning_rate, values[kWeightDecay], num_elements);
    f.averaging = with_average;
    f.ema_momentum = static_cast<C>(values[kEmaMomentum]);
    f.ema_rest = C(1) - f.ema_momentum;
    f.overwrite = with_average && values[kEmaOverwrite] != 0.0;
    return f;
  }

  inline C Gradient(C g) const {
    if (unscaling) g = g / unscale;
    g = g * multiplier;
    if (dividing) g = g / divisor;
    if (clipping) {
      // NaN stays NaN (each comparison is false for it).
      g = g < -clip ? -clip : g;
      g = g > clip ? clip : g;
    }
    return g;
  }

  inline void Average(C& w, C& average) const {
    if (!averaging) return;
    average = ema_momentum * average + ema_rest * w;
    if (overwrite) w = average;
  }
};

// A rule with the step's features around it: the drivers run it like any
// rule (operator()(w, slots..., g)), its last slot being the EMA average
// (absent, i.e. a scratch value, without use_ema).
template <typename Rule, typename C>
struct WithStepFeatures {
  static constexpr int kNumSlots = Rule::kNumSlots + 1;
  Rule rule;
  StepFeatures<C> features;

  template <typename... Args>
  inline void operator()(C& w, Args&&... args) const {
    static_assert(sizeof...(Args) == Rule::kNumSlots + 2, "slots..., average, g");
    Run(w, std::forward_as_tuple(args...), std::make_index_sequence<Rule::kNumSlots>{});
  }

 private:
  template <typename Tuple, std::size_t... I>
  inline void Run(C& w, Tuple t, std::index_sequence<I...>) const {
    constexpr std::size_t kAverage = sizeof...(I);
    const C g = features.Gradient(static_cast<C>(std::get<kAverage + 1>(t)));
    features.decay(w);
    rule(w, std::get<I>(t)..., g);
    features.Average(w, std::get<kAverage>(t));
  }
};

}  // namespace kerasopt
