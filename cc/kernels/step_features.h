// Keras's per-step passes around the update (Optimizer._backend_apply_gradients:
// gradient clipping, decoupled weight decay, the EMA of the weights), folded
// into the element-wise update itself, for every rule at once.
//
// The dense and multi-tensor ops take them as one float64 input, `features`
// (cc/tf/rule_ops.h): empty for a plain step (the rule alone runs), else the
// kNumStepFeatures values below (the multi-tensor op: one row per variable,
// or one row for all; the sparse ops: the gradient's values and skip_step
// only, see RowGradientFeatures). The values are computed in Python exactly as Keras
// computes them (kerasopt/optimizers/step_features.py: the global norm, the
// clipnorm divisor, the EMA momentum of this step), so each element sees
// Keras's own arithmetic, in Keras's order:
//   g  = (g + acc) / k; acc = 0                  (gradient_accumulation_steps=k, on the
//                                                 applying step: the op's accumulation_steps
//                                                 attr; the accumulator is one more slot)
//   g  = g / grad_unscale                        (loss scaling; 1: none)
//   g  = g * grad_multiplier                     (global_clipnorm's scale, or clipnorm)
//   g  = g / grad_divisor                        (clipnorm: max(||g||, clipnorm); 1: none)
//   g  = min(max(g, -clip_value), clip_value)    (clipvalue; 0: none)
//   w -= w * weight_decay * lr                   (decoupled_decay.h; 0: none / excluded)
//   (the rule's update of w and its slots with g)
//   avg = m * avg + (1 - m) * w                  (use_ema; m = ema_momentum, 0 on step 1)
//   w  = avg                                     (ema_overwrite: this step overwrites)
// and skip_step != 0 (every row alike): the op writes nothing at all. Gradient
// accumulation's update op runs on every step, outside a cond, and is skipped
// on the accumulating ones (kerasopt/optimizers/gradient_accumulation.py).
// The EMA average is one more slot after the rule's own (the op's
// `with_average` attr): Keras's own "<var>_average" variable, so checkpoints
// stay Keras's. So is the gradient accumulator (Keras's "<var>_gradient_accumulator"),
// the slot after the average, present only on the op's applying step of gradient
// accumulation (WithStepFeatures<..., kAccumulates = true>; float and double
// storage only: Keras rounds g + acc to a 16-bit dtype before dividing).
//
#pragma once

#include <cstddef>
#include <limits>
#include <tuple>
#include <utility>

#include "cc/kernels/common.h"
#include "cc/kernels/decoupled_decay.h"

// The drivers' loops must see through the wrapper to vectorize the rule in
// it: a call per element (GCC did not inline the variadic forwarding on its
// own) made Adam's fused step several times slower than the plain one.
#if defined(__GNUC__) || defined(__clang__)
#define KERASOPT_FEATURES_INLINE inline __attribute__((always_inline))
#else
#define KERASOPT_FEATURES_INLINE inline
#endif

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
  kSkipStep,
  kNumStepFeatures,
};

// The per-element work around the rule, built from one row of `features`.
// Branch-free: an inactive part either leaves every value as it is (divide
// and multiply by 1, clip at infinity) or is a select the compiler computes
// both sides of (decay, overwrite), so each rule's loop stays one vectorized
// loop whatever the features (a branch per feature would need a loop per
// combination). Without use_ema the average is the drivers' scratch value.
template <typename C>
struct StepFeatures {
  C unscale, multiplier, divisor, clip;
  C decay_factor, weight_decay, lr;  // decoupled_decay.h's rounding
  C ema_momentum, ema_rest;          // m and 1 - m, as Keras rounds them
  C accumulation_steps;              // k of the accumulated mean (unused without it)
  bool decaying, factor_first, overwrite;

  // `values`: kNumStepFeatures values; `with_average`: the op got the EMA slot;
  // `accumulation_steps`: k > 0 on the applying step of gradient accumulation.
  static StepFeatures Make(const double* values, double learning_rate, long long num_elements,
                           bool with_average, int accumulation_steps = 0) {
    StepFeatures f;
    f.accumulation_steps = static_cast<C>(accumulation_steps);
    f.unscale = static_cast<C>(values[kGradUnscale]);
    f.multiplier = static_cast<C>(values[kGradMultiplier]);
    f.divisor = static_cast<C>(values[kGradDivisor]);
    f.clip = values[kClipValue] > 0.0 ? static_cast<C>(values[kClipValue])
                                      : std::numeric_limits<C>::infinity();
    const DecoupledDecay<C> decay =
        DecoupledDecay<C>::Make(learning_rate, values[kWeightDecay], num_elements);
    f.decay_factor = decay.factor;
    f.weight_decay = decay.weight_decay;
    f.lr = decay.lr;
    f.decaying = decay.active;
    f.factor_first = decay.factor_first;
    f.ema_momentum = static_cast<C>(values[kEmaMomentum]);
    f.ema_rest = C(1) - f.ema_momentum;
    f.overwrite = with_average && values[kEmaOverwrite] != 0.0;
    return f;
  }

  // Keras's `(g + acc_g) / steps`, and its reset of the accumulator.
  KERASOPT_FEATURES_INLINE C AccumulatedMean(C g, C& accumulator) const {
    const C mean = (g + accumulator) / accumulation_steps;
    accumulator = C(0);
    return mean;
  }

  KERASOPT_FEATURES_INLINE C Gradient(C g) const {
    g = g / unscale;
    g = g * multiplier;
    g = g / divisor;
    // Keras's clip (NaN stays NaN: each comparison is false for it).
    g = g < -clip ? -clip : g;
    return g > clip ? clip : g;
  }

  // decoupled_decay.h: w -= w * (wd * lr), or (w * wd) * lr for one element.
  KERASOPT_FEATURES_INLINE C Decayed(C w) const {
    const C step = factor_first ? w * decay_factor : (w * weight_decay) * lr;
    return decaying ? w - step : w;
  }

  KERASOPT_FEATURES_INLINE void Average(C& w, C& average) const {
    average = ema_momentum * average + ema_rest * w;
    w = overwrite ? average : w;
  }
};

// The gradient features of a sparse step (the sparse ops' `features`), where
// a row's gradient is the sum of the values naming it. Keras's operations on
// a tf.IndexedSlices (the loss scale's division, clipvalue, clip_by_norm)
// act on each value before the duplicates are summed; global_clipnorm's
// `v * scale` first makes it a dense tensor, so it acts on the sum
// (kOnSum). Decay and the EMA act on every row of the variable, not on the
// rows a gradient names: the sparse ops refuse them (Keras's own passes run).
template <typename C, bool kOnSum>
struct RowGradientFeatures {
  StepFeatures<C> features;

  KERASOPT_FEATURES_INLINE C Value(C v) const { return kOnSum ? v : features.Gradient(v); }
  KERASOPT_FEATURES_INLINE C Sum(C g) const { return kOnSum ? features.Gradient(g) : g; }
};

// A rule with the step's features around it: the drivers run it like any
// rule (operator()(w, slots..., g)), its slots after the rule's own being the
// EMA average (absent, i.e. a scratch value, without use_ema) and, with
// kAccumulates, the gradient accumulator (a separate type, not a scratch
// slot: a step without it keeps the drivers' direct loop over its memory).
template <typename Rule, typename C, bool kAccumulates = false>
struct WithStepFeatures {
  static constexpr int kNumSlots = Rule::kNumSlots + 1 + (kAccumulates ? 1 : 0);
  Rule rule;
  StepFeatures<C> features;

  template <typename... Args>
  KERASOPT_FEATURES_INLINE void operator()(C& w, Args&&... args) const {
    static_assert(sizeof...(Args) == kNumSlots + 1, "slots..., average, [accumulator], g");
    Run(w, std::forward_as_tuple(args...), std::make_index_sequence<Rule::kNumSlots>{});
  }

 private:
  template <typename Tuple, std::size_t... I>
  KERASOPT_FEATURES_INLINE void Run(C& w, Tuple t, std::index_sequence<I...>) const {
    constexpr std::size_t kAverage = sizeof...(I);
    constexpr std::size_t kGrad = kNumSlots;
    C g = static_cast<C>(std::get<kGrad>(t));
    if constexpr (kAccumulates) g = features.AccumulatedMean(g, std::get<kAverage + 1>(t));
    g = features.Gradient(g);
    w = features.Decayed(w);
    rule(w, std::get<I>(t)..., g);
    features.Average(w, std::get<kAverage>(t));
  }
};

}  // namespace kerasopt
