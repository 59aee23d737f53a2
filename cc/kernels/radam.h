// RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate and
// Beyond", ICLR 2020, arXiv:1908.03265, Algorithm 2).
//
// Per step t = iterations + 1, with hyperparameters lr, beta_1, beta_2, eps:
//   m       = beta_1 m + (1 - beta_1) g
//   v       = beta_2 v + (1 - beta_2) g^2
//   rho_inf = 2 / (1 - beta_2) - 1
//   rho_t   = rho_inf - 2 t beta_2^t / (1 - beta_2^t)
//   if rho_t > 4 (the variance of the adaptive learning rate is tractable):
//     r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//     w  -= (lr r_t sqrt(1 - beta_2^t) / (1 - beta_1^t)) * m / (sqrt(v) + eps)
//   else (SGD with bias-corrected momentum):
//     w  -= (lr / (1 - beta_1^t)) * m
// The paper's adaptive learning rate sqrt((1 - beta_2^t) / v) has no epsilon;
// eps is added to sqrt(v) as in Keras's Adam ("epsilon hat"), so a rectified
// step is exactly r_t times Adam's step from the same m and v.
//
// Everything that depends only on t (rho_t, r_t, the step size, the branch) is
// taken in double and rounded once to the compute type.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

// The per-step scalars of RAdam, in double (shared by the rule and its docs/tests).
struct RAdamStep {
  bool rectified;    // rho_t > 4
  double step_size;  // see above; includes r_t when rectified

  KERASOPT_HOST_DEVICE static RAdamStep Make(double lr, double beta_1, double beta_2,
                                             long long step) {
    const double t = static_cast<double>(step);
    const double b1_correction = 1.0 - std::pow(beta_1, t);
    const double b2_power = std::pow(beta_2, t);
    const double b2_correction = 1.0 - b2_power;
    const double rho_inf = 2.0 / (1.0 - beta_2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * b2_power / b2_correction;
    RAdamStep s;
    s.rectified = rho_t > 4.0;
    if (s.rectified) {
      const double r = std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                 ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
      s.step_size = lr * r * std::sqrt(b2_correction) / b1_correction;
    } else {
      s.step_size = lr / b1_correction;
    }
    return s;
  }
};

template <typename C>
struct RAdamRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity

  C step_size;
  C beta_1, one_minus_b1;
  C beta_2, one_minus_b2;
  C epsilon;
  bool rectified;

  KERASOPT_HOST_DEVICE static RAdamRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                             double epsilon) {
    const RAdamStep s = RAdamStep::Make(in.learning_rate, beta_1, beta_2, in.step);
    RAdamRule r;
    r.step_size = static_cast<C>(s.step_size);
    r.rectified = s.rectified;
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C g) const {
    m = beta_1 * m + one_minus_b1 * g;
    v = beta_2 * v + one_minus_b2 * (g * g);
    if (rectified) {
      w -= step_size * (m / (std::sqrt(v) + epsilon));
    } else {
      w -= step_size * m;
    }
  }
};

struct RAdam : RuleDeclaration<RAdamRule> {
  static constexpr Scalars<3> kScalars{"beta_1", "beta_2", "epsilon"};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
};

}  // namespace kerasopt
