// Nadam (Dozat, "Incorporating Nesterov Momentum into Adam", 2016): Adam with
// Nesterov momentum, with the momentum schedule of the paper.
//
// Per step t = iterations + 1, with lr, beta_1, beta_2, eps:
//   mu_t      = beta_1 * (1 - 0.5 * 0.96^t)           (momentum schedule)
//   mu_{t+1}  = beta_1 * (1 - 0.5 * 0.96^(t+1))
//   P_t       = prod_{i<=t} mu_i                      (u_product, optimizer state)
//   m        += (g - m) * (1 - beta_1)
//   v        += (g^2 - v) * (1 - beta_2)
//   m_hat     = mu_{t+1} m / (1 - P_t mu_{t+1}) + (1 - mu_t) g / (1 - P_t)
//   v_hat     = v / (1 - beta_2^t)
//   w        -= (m_hat * lr) / (sqrt(v_hat) + eps)
// P_t is a scalar carried across steps: the optimizer multiplies it by mu_t
// once per step before the per-variable updates, and passes it in here.
//
// Where Keras deviates from the paper (followed here): Dozat's schedule is
// mu_t = beta_1 (1 - 0.5 * 0.96^(t/250)) (Keras 2's schedule_decay = 0.004);
// Keras 3 drops the 1/250 and uses 0.96^t, so mu_t reaches beta_1 within a few
// dozen steps. eps is added to sqrt(v_hat) (Keras's "epsilon hat"), and
// 1 - beta_1, 1 - beta_2 are formed in the compute type, as Keras does. The
// operation order is Keras 3's, so float32 results match
// keras.optimizers.Nadam bit for bit.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct NadamRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity

  C lr;
  C one_minus_b1;            // 1 - beta_1
  C one_minus_b2;            // 1 - beta_2
  C u_t_1;                   // mu_{t+1}
  C one_minus_u_product_t_1; // 1 - P_t mu_{t+1}
  C one_minus_u_t;           // 1 - mu_t
  C one_minus_u_product_t;   // 1 - P_t
  C one_minus_b2_power;      // 1 - beta_2^t
  C epsilon;

  KERASOPT_HOST_DEVICE static NadamRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                             double epsilon, double u_product) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    const C t = static_cast<C>(step);
    const C t_next = static_cast<C>(step + 1);
    const C b1 = static_cast<C>(beta_1);
    const C b2 = static_cast<C>(beta_2);
    const C decay = static_cast<C>(0.96);
    const C u_t = b1 * (C(1) - C(0.5) * std::pow(decay, t));
    const C u_next = b1 * (C(1) - C(0.5) * std::pow(decay, t_next));
    const C u_product_t = static_cast<C>(u_product);
    const C u_product_t_1 = u_product_t * u_next;
    NadamRule r;
    r.lr = static_cast<C>(lr);
    r.one_minus_b1 = C(1) - b1;
    r.one_minus_b2 = C(1) - b2;
    r.u_t_1 = u_next;
    r.one_minus_u_product_t_1 = C(1) - u_product_t_1;
    r.one_minus_u_t = C(1) - u_t;
    r.one_minus_u_product_t = C(1) - u_product_t;
    r.one_minus_b2_power = C(1) - std::pow(b2, t);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C g) const {
    m += (g - m) * one_minus_b1;
    v += (g * g - v) * one_minus_b2;
    const C m_hat = (u_t_1 * m) / one_minus_u_product_t_1 +
                    (one_minus_u_t * g) / one_minus_u_product_t;
    const C v_hat = v / one_minus_b2_power;
    w -= (m_hat * lr) / (std::sqrt(v_hat) + epsilon);
  }
};

struct Nadam : RuleDeclaration<NadamRule> {
  // u_product: prod of mu_1..mu_t, already including this step (optimizer state).
  static constexpr Scalars<4> kScalars{"beta_1", "beta_2", "epsilon", "u_product"};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
