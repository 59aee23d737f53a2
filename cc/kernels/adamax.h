// Adamax (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR
// 2015, Section 7.1 / Algorithm 2): Adam with the infinity norm in place of
// the second moment.
//
// Per step t = iterations + 1, with lr, beta_1, beta_2, eps:
//   m  += (g - m) * (1 - beta_1)                  (= beta_1 m + (1 - beta_1) g)
//   u   = max(beta_2 * u, |g|)
//   w  -= (lr * m) / ((1 - beta_1^t) * (u + eps))
// The paper has no eps (it divides by u, which is > 0 once a nonzero gradient
// was seen); Keras adds eps to u, as here. The operation order is Keras 3's,
// so float32 results match keras.optimizers.Adamax bit for bit.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdamaxRule {
  static constexpr int kNumSlots = 2;  // momentum, norm

  C lr;
  C one_minus_b1;        // 1 - beta_1 (formed in double, as Keras does)
  C beta_2;
  C one_minus_b1_power;  // 1 - beta_1^t
  C epsilon;

  KERASOPT_HOST_DEVICE static AdamaxRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                              double epsilon) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    const C t = static_cast<C>(step);
    AdamaxRule r;
    r.lr = static_cast<C>(lr);
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b1_power = C(1) - std::pow(static_cast<C>(beta_1), t);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& u, C g) const {
    m += (g - m) * one_minus_b1;
    const C decayed = beta_2 * u;
    const C abs_g = g < C(0) ? -g : g;
    u = decayed > abs_g ? decayed : abs_g;
    w -= (lr * m) / (one_minus_b1_power * (u + epsilon));
  }
};

struct Adamax : RuleDeclaration<AdamaxRule> {
  static constexpr Scalars<3> kScalars{"beta_1", "beta_2", "epsilon"};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"norm"}}};
  static constexpr bool kUsesStep = true;
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
