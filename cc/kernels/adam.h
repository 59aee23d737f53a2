// Adam (Kingma & Ba, 2015) and its AMSGrad variant (Reddi et al., 2018).
//
// Per step t = iterations + 1, with hyperparameters lr, beta_1, beta_2, eps:
//   alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
//   m      += (g - m) * (1 - beta_1)            (= beta_1 m + (1 - beta_1) g)
//   v      += (g^2 - v) * (1 - beta_2)
//   v_hat   = max(v_hat, v)                     (AMSGrad only; v_hat replaces v below)
//   w      -= alpha_t * m / (sqrt(v) + eps)
// This is the paper's "efficient" ordering (end of its Section 2), so eps is
// the paper's epsilon-hat. The operation order is Keras 3's, so float32 results
// match keras.optimizers.Adam exactly.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdamRule {
  static constexpr int kNumSlots = 3;  // momentum, velocity, velocity_hat

  C alpha;          // bias-corrected step size for this step
  C one_minus_b1;   // 1 - beta_1
  C one_minus_b2;   // 1 - beta_2
  C epsilon;
  bool amsgrad;

  // Hyperparameters arrive in double (the op's scalar inputs); the per-step
  // scalars are then computed in C, in the same order as Keras.
  KERASOPT_HOST_DEVICE static AdamRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                            double epsilon, bool amsgrad) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    const C t = static_cast<C>(step);
    const C beta_1_power = std::pow(static_cast<C>(beta_1), t);
    const C beta_2_power = std::pow(static_cast<C>(beta_2), t);
    AdamRule r;
    r.alpha = static_cast<C>(lr) * std::sqrt(C(1) - beta_2_power) /
              (C(1) - beta_1_power);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.epsilon = static_cast<C>(epsilon);
    r.amsgrad = amsgrad;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C& v_hat, C g) const {
    m += (g - m) * one_minus_b1;
    v += (g * g - v) * one_minus_b2;
    C v_used = v;
    if (amsgrad) {
      v_hat = v_hat > v ? v_hat : v;
      v_used = v_hat;
    }
    w -= (m * alpha) / (std::sqrt(v_used) + epsilon);
  }
};

struct Adam : RuleDeclaration<AdamRule> {
  static constexpr Scalars<3> kScalars{"beta_1", "beta_2", "epsilon"};
  static constexpr Flags<1> kFlags{{{"amsgrad"}}};
  static constexpr Slots<3> kSlots{{{"momentum"}, {"velocity"}, {"velocity_hat", /*amsgrad*/ 0}}};
  static constexpr bool kUsesStep = true;
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
