// Yogi (Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive Methods for Nonconvex
// Optimization", NeurIPS 2018, Algorithm 2).
//
// With hyperparameters lr, beta_1, beta_2, eps (v starts at
// initial_accumulator_value > 0, m at 0):
//   m  = beta_1 m + (1 - beta_1) g
//   v  = v - (1 - beta_2) sign(v - g^2) g^2
//   w -= lr * m / (sqrt(v) + eps)
// As in the paper's Algorithm 2 there is no bias correction, so the rule does
// not depend on the step. Other libraries differ: optax's scale_by_yogi
// divides m and v by Adam's corrections 1 - beta^t (and starts m, like v, at
// initial_accumulator_value), as TensorFlow Addons' and TFF's Yogi correct too.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct YogiRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity

  C lr;
  C beta_1, one_minus_b1;
  C one_minus_b2;
  C epsilon;
  C l1, l2;
  bool proximal;  // l1 > 0 or l2 > 0
  bool tanh_activation;

  KERASOPT_HOST_DEVICE static YogiRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                            double epsilon, double l1, double l2,
                                            bool tanh_activation) {
    const double lr = in.learning_rate;
    YogiRule r;
    r.l1 = static_cast<C>(l1);
    r.l2 = static_cast<C>(l2);
    r.proximal = l1 > 0.0 || l2 > 0.0;
    r.tanh_activation = tanh_activation;
    r.lr = static_cast<C>(lr);
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C g) const {
    m = beta_1 * m + one_minus_b1 * g;
    const C g2 = g * g;
    const C diff = v - g2;
    const C sign = tanh_activation
                       ? static_cast<C>(std::tanh(10.0 * static_cast<double>(diff)))
                       : static_cast<C>((diff > C(0)) - (diff < C(0)));
    v = v - (one_minus_b2 * sign) * g2;
    if (!proximal) {
      w -= lr * (m / (std::sqrt(v) + epsilon));
      return;
    }
    const C lr_w = lr / (std::sqrt(v) + epsilon);
    const C u = w - lr_w * m;
    const C shrink = C(1) + l2 * lr_w;
    if (l1 > C(0)) {
      const C threshold = l1 * lr_w;
      const C u_sign = static_cast<C>((u > C(0)) - (u < C(0)));
      // A NaN u stays NaN (as TFA's, and as every rule propagates it).
      w = std::fabs(u) > threshold ? (u - threshold * u_sign) / shrink : (u != u ? u : C(0));
    } else {
      w = u / shrink;
    }
  }
};

struct Yogi : RuleDeclaration<YogiRule> {
  static constexpr Scalars<5> kScalars{"beta_1", "beta_2", "epsilon", "l1", "l2"};
  static constexpr ScalarDefaults<2> kScalarDefaults{{{"l1", 0.0}, {"l2", 0.0}}};
  static constexpr Flags<1> kFlags{{{"tanh_activation"}}};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};

  KERASOPT_HOST_DEVICE static const char* Check(bool, double, double, double, double l1,
                                                double l2, bool) {
    if (!(l1 >= 0.0)) return "l1 must be >= 0";
    if (!(l2 >= 0.0)) return "l2 must be >= 0";
    return nullptr;
  }
};

}  // namespace kerasopt
