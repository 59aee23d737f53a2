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

namespace kerasopt {

template <typename C>
struct YogiRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity

  C lr;
  C beta_1, one_minus_b1;
  C one_minus_b2;
  C epsilon;

  KERASOPT_HOST_DEVICE static YogiRule Make(double lr, double beta_1, double beta_2,
                                            double epsilon) {
    YogiRule r;
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
    const C sign = static_cast<C>((diff > C(0)) - (diff < C(0)));
    v = v - (one_minus_b2 * sign) * g2;
    w -= lr * (m / (std::sqrt(v) + epsilon));
  }
};

}  // namespace kerasopt
