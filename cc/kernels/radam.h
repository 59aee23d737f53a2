// RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate and
// Beyond", ICLR 2020, arXiv:1908.03265, Algorithm 2).
//
// Per step t = iterations + 1, with hyperparameters lr, beta_1, beta_2, eps:
//   m       = beta_1 m + (1 - beta_1) g
//   v       = beta_2 v + (1 - beta_2) g^2
//   v_hat   = max(v_hat, v)                       (amsgrad only; then v := v_hat below)
//   rho_inf = 2 / (1 - beta_2) - 1
//   rho_t   = rho_inf - 2 t beta_2^t / (1 - beta_2^t)
//   if rho_t > 4 (the variance of the adaptive learning rate is tractable)
//      and rho_t >= sma_threshold:
//     r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//     w  -= (lr r_t sqrt(1 - beta_2^t) / (1 - beta_1^t)) * m / (sqrt(v) + eps)
//   else (SGD with bias-corrected momentum):
//     w  -= (lr / (1 - beta_1^t)) * m
// The paper's adaptive learning rate sqrt((1 - beta_2^t) / v) has no epsilon;
// eps is added to sqrt(v) as in Keras's Adam ("epsilon hat"), so a rectified
// step is exactly r_t times Adam's step from the same m and v.
//
// TensorFlow Addons' RectifiedAdam options (defaults keep the paper's rule):
// sma_threshold (TFA: rho_t >= 5; the default 4 leaves the paper's rho_t > 4,
// and a threshold below 4 cannot switch on r_t where it is undefined);
// amsgrad (v_hat, TFA's "vhat": kept every step, used by the rectified step);
// total_steps > 0 replaces lr by TFA's warmup then linear decay to min_lr:
//   warmup = total_steps * warmup_proportion
//   decay  = max(total_steps - warmup, 1)
//   lr_t   = lr t / warmup                                  if t <= warmup
//          = lr + (min_lr - lr) / decay * min(t - warmup, decay)   otherwise
//
// Everything that depends only on t (lr_t, rho_t, r_t, the step size, the
// branch) is taken in double and rounded once to the compute type.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

// TensorFlow Addons' warmup and linear decay of lr (used when total_steps > 0).
KERASOPT_HOST_DEVICE double WarmupLearningRate(double lr, double t, double total_steps,
                                               double warmup_proportion, double min_lr) {
  const double warmup_steps = total_steps * warmup_proportion;
  const double decay_steps = std::fmax(total_steps - warmup_steps, 1.0);
  if (t <= warmup_steps) return lr * (t / warmup_steps);
  const double decay_rate = (min_lr - lr) / decay_steps;
  return lr + decay_rate * std::fmin(t - warmup_steps, decay_steps);
}

// The per-step scalars of RAdam, in double (shared by the rule and its docs/tests).
struct RAdamStep {
  bool rectified;    // rho_t > 4 and rho_t >= sma_threshold
  double step_size;  // see above; includes r_t when rectified
  double lr;         // the step's learning rate (after the warmup, if any)
  double r;          // r_t when rectified, else 0

  KERASOPT_HOST_DEVICE static RAdamStep Make(double lr, double beta_1, double beta_2,
                                             long long step, double sma_threshold = 4.0,
                                             double total_steps = 0.0,
                                             double warmup_proportion = 0.0,
                                             double min_lr = 0.0) {
    const double t = static_cast<double>(step);
    if (total_steps > 0.0) lr = WarmupLearningRate(lr, t, total_steps, warmup_proportion, min_lr);
    const double b1_correction = 1.0 - std::pow(beta_1, t);
    const double b2_power = std::pow(beta_2, t);
    const double b2_correction = 1.0 - b2_power;
    const double rho_inf = 2.0 / (1.0 - beta_2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * b2_power / b2_correction;
    RAdamStep s;
    s.lr = lr;
    s.rectified = rho_t > 4.0 && rho_t >= sma_threshold;
    s.r = 0.0;
    if (s.rectified) {
      s.r = std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                      ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t));
      s.step_size = lr * s.r * std::sqrt(b2_correction) / b1_correction;
    } else {
      s.step_size = lr / b1_correction;
    }
    return s;
  }
};

template <typename C>
struct RAdamRule {
  static constexpr int kNumSlots = 3;  // momentum, velocity, velocity_hat (amsgrad)

  C step_size;
  C beta_1, one_minus_b1;
  C beta_2, one_minus_b2;
  C epsilon;
  bool rectified;
  bool amsgrad;

  KERASOPT_HOST_DEVICE static RAdamRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                             double epsilon, double sma_threshold,
                                             double total_steps, double warmup_proportion,
                                             double min_lr, bool amsgrad) {
    const RAdamStep s = RAdamStep::Make(in.learning_rate, beta_1, beta_2, in.step, sma_threshold,
                                        total_steps, warmup_proportion, min_lr);
    RAdamRule r;
    r.amsgrad = amsgrad;
    r.step_size = static_cast<C>(s.step_size);
    r.rectified = s.rectified;
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C& v_hat, C g) const {
    m = beta_1 * m + one_minus_b1 * g;
    v = beta_2 * v + one_minus_b2 * (g * g);
    C v_used = v;
    if (amsgrad) {
      // The running maximum; a NaN in v propagates (as in AdamRule).
      v_hat = v_hat > v ? v_hat : v;
      v_used = v_hat;
    }
    if (rectified) {
      w -= step_size * (m / (std::sqrt(v_used) + epsilon));
    } else {
      w -= step_size * m;
    }
  }
};

struct RAdam : RuleDeclaration<RAdamRule> {
  static constexpr Scalars<7> kScalars{"beta_1",        "beta_2",      "epsilon",
                                       "sma_threshold", "total_steps", "warmup_proportion",
                                       "min_lr"};
  static constexpr ScalarDefaults<4> kScalarDefaults{{{"sma_threshold", 4.0},
                                                      {"total_steps", 0.0},
                                                      {"warmup_proportion", 0.1},
                                                      {"min_lr", 0.0}}};
  static constexpr Flags<1> kFlags{{{"amsgrad"}}};
  static constexpr Slots<3> kSlots{{{"momentum"}, {"velocity"}, {"velocity_hat", /*amsgrad*/ 0}}};
  static constexpr bool kUsesStep = true;

  KERASOPT_HOST_DEVICE static const char* Check(bool, double, double, double,
                                                double sma_threshold, double total_steps,
                                                double warmup_proportion, double, bool) {
    if (!(sma_threshold >= 0.0)) return "sma_threshold must be >= 0";
    if (!(total_steps >= 0.0)) return "total_steps must be >= 0";
    if (total_steps > 0.0 && !(warmup_proportion >= 0.0 && warmup_proportion <= 1.0)) {
      return "warmup_proportion must be in [0, 1]";
    }
    return nullptr;
  }
};

}  // namespace kerasopt
