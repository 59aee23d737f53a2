// Lion, "EvoLved Sign Momentum" (Chen et al., "Symbolic Discovery of
// Optimization Algorithms", NeurIPS 2023, Algorithm 2), as Keras 3 does it.
//
// With lr, beta_1 (interpolation for the update) and beta_2 (momentum decay):
//   c  = m * beta_1 + g * (1 - beta_1)
//   w -= lr * sign(c)
//   m  = m * beta_2 + g * (1 - beta_2)
// sign(0) = 0 and sign(NaN) = NaN, like tf.sign. The paper's Algorithm 2 also
// has decoupled weight decay inside the update (w -= lr (sign(c) + lambda w));
// Keras has no Lion-specific decay: its generic weight_decay (w -= w wd lr,
// before the update) covers it, and so does kerasopt's. 1 - beta_1 and
// 1 - beta_2 are formed in the compute type, as Keras does, so float32 results
// match keras.optimizers.Lion bit for bit.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct LionRule {
  static constexpr int kNumSlots = 1;  // momentum

  C lr;
  C beta_1, one_minus_b1;
  C beta_2, one_minus_b2;

  KERASOPT_HOST_DEVICE static LionRule Make(const SharedInputs& in, double beta_1, double beta_2) {
    const double lr = in.learning_rate;
    LionRule r;
    r.lr = static_cast<C>(lr);
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = C(1) - r.beta_1;
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b2 = C(1) - r.beta_2;
    return r;
  }

  // Branch-free (selects), so the driver's loop still vectorizes.
  KERASOPT_HOST_DEVICE static C Sign(C x) {
    const C s = (x > C(0) ? C(1) : C(0)) - (x < C(0) ? C(1) : C(0));  // -0 -> 0, as tf.sign
    return x != x ? x : s;                                            // NaN stays NaN
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C g) const {
    const C c = m * beta_1 + g * one_minus_b1;
    w -= lr * Sign(c);
    m = m * beta_2 + g * one_minus_b2;
  }
};

struct Lion : RuleDeclaration<LionRule> {
  static constexpr Scalars<2> kScalars{"beta_1", "beta_2"};
  static constexpr Slots<1> kSlots{{{"momentum"}}};
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
