// Schedule-Free SGD: schedule_free.h's rule with z's step lr_t * g (no
// second moment). Keras 3.15 has no ScheduleFreeSGD (see
// kerasopt/optimizers/schedule_free.py for how this one relates to the one
// proposed to Keras).
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/schedule_free.h"

namespace kerasopt {

template <typename C>
struct ScheduleFreeSGDRule {
  static constexpr int kNumSlots = 1;  // momentum (z)

  ScheduleFreeAverage<C> average;

  KERASOPT_HOST_DEVICE static ScheduleFreeSGDRule Make(const SharedInputs& in,
                                                       double weight_decay, double beta_1,
                                                       double warmup_steps, bool interpolate,
                                                       bool scalar_variable) {
    ScheduleFreeSGDRule r;
    r.average = ScheduleFreeAverage<C>::Make(in, weight_decay, beta_1, warmup_steps,
                                             interpolate, scalar_variable);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& y, C& z, C g) const {
    average.decay(y);
    average.Finish(y, z, z - average.lr * g);
  }
};

// Not kSparse, as ScheduleFreeAdamW (schedule_free_adamw.h): y moves where
// the gradient is zero too.
struct ScheduleFreeSGD : RuleDeclaration<ScheduleFreeSGDRule> {
  static constexpr Scalars<3> kScalars{"weight_decay", "beta_1", "warmup_steps"};
  // interpolate: the paper's rule by default; scalar_variable: as ScheduleFreeAdamW's.
  static constexpr Flags<2> kFlags{{{"interpolate", true}, {"scalar_variable", false}}};
  static constexpr Slots<1> kSlots{{{"momentum"}}};
  static constexpr bool kUsesStep = true;
  KERASOPT_HOST_DEVICE static const char* Check(bool, double, double beta_1,
                                                double warmup_steps, bool, bool) {
    return CheckScheduleFree(beta_1, warmup_steps);
  }
  template <typename C>
  static void ForVariable(long long num_elements, ScheduleFreeSGDRule<C>* rule) {
    ScheduleFreeForVariable(num_elements, rule);
  }
};

}  // namespace kerasopt
