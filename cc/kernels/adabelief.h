// AdaBelief (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the
// Belief in Observed Gradients", NeurIPS 2020, arXiv:2010.07468, Algorithm 2).
//
// Per step t = iterations + 1, with hyperparameters lr, beta_1, beta_2, eps:
//   m  = beta_1 m + (1 - beta_1) g
//   s  = beta_2 s + (1 - beta_2) (g - m)^2 + eps     (eps inside s, as the paper)
//   s  = max(s, s_previous)                          (amsgrad only, as the paper)
//   w -= (lr / (1 - beta_1^t)) * m / (sqrt(s / (1 - beta_2^t)) + eps)
// i.e. w -= lr * m_hat / (sqrt(s_hat) + eps): eps both inside s and added to
// sqrt(s_hat), as in the paper's Algorithm 2 (and the authors' code).
//
// rectify (the authors' and TensorFlow Addons' option): RAdam's rectification
// (cc/kernels/radam.h, RAdamStep), the same s; when rho_t > 4 and
// rho_t >= sma_threshold
//   w -= (lr r_t / (1 - beta_1^t)) * m / (sqrt(s / (1 - beta_2^t)) + eps)
// else (SGD with bias-corrected momentum)
//   w -= (lr / (1 - beta_1^t)) * m
// (TensorFlow Addons' form: eps outside the square root, as above.)
//
// The per-step scalars lr / (1 - beta_1^t) and 1 / (1 - beta_2^t) are taken
// in double and rounded once to the compute type. s is formed as
// beta_2 s + (1 - beta_2) ((g - m)^2 + eps / (1 - beta_2)), the same value
// algebraically, with eps / (1 - beta_2) rounded once: a sum of three terms
// would be regrouped by TensorFlow's graph optimizer in the fallback
// (differently for scalars and tensors), this form has no such freedom.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/radam.h"

namespace kerasopt {

template <typename C>
struct AdaBeliefRule {
  static constexpr int kNumSlots = 2;  // momentum, belief (s)

  C step_size;      // lr / (1 - beta_1^t)
  C inv_b2_correction;  // 1 / (1 - beta_2^t)
  C beta_1, one_minus_b1;
  C beta_2, one_minus_b2;
  C epsilon;
  C epsilon_in_s;  // eps / (1 - beta_2)
  bool amsgrad;
  bool adaptive;  // false: a rectify step before r_t is used (momentum SGD)

  KERASOPT_HOST_DEVICE static AdaBeliefRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                                 double epsilon, double sma_threshold,
                                                 bool amsgrad, bool rectify) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    const double t = static_cast<double>(step);
    AdaBeliefRule r;
    r.adaptive = true;
    r.step_size = static_cast<C>(lr / (1.0 - std::pow(beta_1, t)));
    if (rectify) {
      const RAdamStep radam = RAdamStep::Make(lr, beta_1, beta_2, step, sma_threshold);
      r.adaptive = radam.rectified;
      if (radam.rectified) r.step_size = static_cast<C>(lr * radam.r / (1.0 - std::pow(beta_1, t)));
    }
    r.inv_b2_correction = static_cast<C>(1.0 / (1.0 - std::pow(beta_2, t)));
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.epsilon = static_cast<C>(epsilon);
    r.epsilon_in_s = static_cast<C>(epsilon / (1.0 - beta_2));
    r.amsgrad = amsgrad;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& s, C g) const {
    m = beta_1 * m + one_minus_b1 * g;
    const C d = g - m;
    C s_new = beta_2 * s + one_minus_b2 * (d * d + epsilon_in_s);
    // The running maximum; a NaN in s_new propagates (as in AdamRule).
    if (amsgrad) s_new = s > s_new ? s : s_new;
    s = s_new;
    if (adaptive) {
      w -= step_size * (m / (std::sqrt(s * inv_b2_correction) + epsilon));
    } else {
      w -= step_size * m;
    }
  }
};

struct AdaBelief : RuleDeclaration<AdaBeliefRule> {
  static constexpr Scalars<4> kScalars{"beta_1", "beta_2", "epsilon", "sma_threshold"};
  static constexpr ScalarDefaults<1> kScalarDefaults{{{"sma_threshold", 4.0}}};
  static constexpr Flags<2> kFlags{{{"amsgrad"}, {"rectify"}}};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"belief"}}};
  static constexpr bool kUsesStep = true;
};

}  // namespace kerasopt
