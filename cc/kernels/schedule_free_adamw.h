// Schedule-Free AdamW, as keras.optimizers.ScheduleFreeAdamW (Keras 3.15):
// z's step is AdamW's, lr_t * g / (sqrt(v / (1 - beta_2^t)) + epsilon), with
// v += (g^2 - v) * (1 - beta_2); the rest (decay, warmup, average,
// interpolation) and the operation order are in schedule_free.h.
#pragma once

#include <cmath>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/schedule_free.h"

namespace kerasopt {

template <typename C>
struct ScheduleFreeAdamWRule {
  static constexpr int kNumSlots = 2;  // momentum (z), velocity

  ScheduleFreeAverage<C> average;
  C one_minus_b2;
  C b2_correction;  // 1 - beta_2^t
  C epsilon;

  KERASOPT_HOST_DEVICE static ScheduleFreeAdamWRule Make(const SharedInputs& in,
                                                         double weight_decay, double beta_1,
                                                         double beta_2, double epsilon,
                                                         double warmup_steps, bool interpolate,
                                                         bool scalar_variable) {
    ScheduleFreeAdamWRule r;
    r.average = ScheduleFreeAverage<C>::Make(in, weight_decay, beta_1, warmup_steps,
                                             interpolate, scalar_variable);
    const C beta_2_c = static_cast<C>(beta_2);
    r.one_minus_b2 = C(1) - beta_2_c;
    r.b2_correction = C(1) - std::pow(beta_2_c, static_cast<C>(in.step));
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& y, C& z, C& v, C g) const {
    average.decay(y);
    v += (g * g - v) * one_minus_b2;
    const C z_new = z - (average.lr * g) / (std::sqrt(v / b2_correction) + epsilon);
    average.Finish(y, z, z_new);
  }
};

// Not kSparse: every element of y moves at every step, also where the
// gradient is zero (x moves towards z by 1/t, and AdamW's v decays), so
// updating only the rows a sparse gradient names is not the rule; sparse
// gradients are densified, as Keras does.
struct ScheduleFreeAdamW : RuleDeclaration<ScheduleFreeAdamWRule> {
  // weight_decay: 0 for a variable excluded from weight decay.
  static constexpr Scalars<5> kScalars{"weight_decay", "beta_1", "beta_2", "epsilon",
                                       "warmup_steps"};
  // interpolate: Keras 3.15's rule by default; scalar_variable: the variable
  // has shape () (schedule_free.h: the average's rounding).
  static constexpr Flags<2> kFlags{{{"interpolate", false}, {"scalar_variable", false}}};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
  KERASOPT_HOST_DEVICE static const char* Check(bool, double, double beta_1, double, double,
                                                double warmup_steps, bool, bool) {
    return CheckScheduleFree(beta_1, warmup_steps);
  }
  template <typename C>
  static void ForVariable(long long num_elements, ScheduleFreeAdamWRule<C>* rule) {
    ScheduleFreeForVariable(num_elements, rule);
  }
};

}  // namespace kerasopt
