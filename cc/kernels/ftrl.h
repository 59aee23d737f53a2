// FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View from the
// Trenches", KDD 2013, Algorithm 1), with the extensions Keras 3 has.
//
// Per element, with n = accumulator, z = linear, p = -learning_rate_power,
// lr = learning_rate, l1, l2, l2_shrinkage and beta the hyperparameters:
//   l2_reg  = l2 + beta / (2 lr)                (per step, once)
//   g'      = g + 2 l2_shrinkage w              (shrinkage-type L2)
//   n_new   = n + g^2
//   z      += g' - ((n_new^p - n^p) / lr) w     (sigma w, with the OLD w)
//   quad    = n_new^p / lr + 2 l2_reg
//   w       = (clip(z, -l1, l1) - z) / quad     (0 exactly when |z| <= l1)
//   n       = n_new
// The paper's form is w = -(z - sgn(z) l1) / ((beta + sqrt(n)) / alpha + l2)
// for |z| > l1, else 0, with p = 1/2. Keras deviates: any power p, beta folded
// into the L2 term as beta / (2 lr) (so beta is not added to sqrt(n) but to the
// denominator scaled by 1/lr, which is the same thing only for p = 1/2), the
// L2 term doubled (2 l2_reg, as in TF's ApplyFtrlV2: l2 multiplies ||w||^2, not
// ||w||^2 / 2), and the shrinkage gradient g'. The clip form gives exactly the
// paper's sgn(z) l1 - z, and an exact zero inside [-l1, l1]. Operation order is
// Keras's.
//
// Powers: Keras calls TensorFlow's vectorized pow, which is not correctly
// rounded (for p = 1/2 it differs from sqrt by one ulp in about a quarter of
// float32 elements) and gives different results at a tensor's tail. We compute
// a correctly rounded power instead: sqrt for p = 1/2, 1 for p = 0, and
// otherwise pow in double (rounded once to float for float compute). So
// float32 results match Keras within a few ulps rather than bit for bit.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct FtrlRule {
  static constexpr int kNumSlots = 2;  // accumulator, linear

  enum class Power { kSqrt, kOne, kGeneral };

  C lr;
  C power;          // -learning_rate_power
  Power power_kind;
  C l1;
  C two_l2_reg;     // 2 * (l2 + beta / (2 lr))
  C two_shrinkage;  // 2 * l2_shrinkage

  KERASOPT_HOST_DEVICE static FtrlRule Make(const SharedInputs& in, double learning_rate_power,
                                            double l1, double l2, double l2_shrinkage,
                                            double beta) {
    const double lr = in.learning_rate;
    FtrlRule r;
    r.lr = static_cast<C>(lr);
    r.power = static_cast<C>(-learning_rate_power);
    r.power_kind = learning_rate_power == -0.5 ? Power::kSqrt
                   : learning_rate_power == 0.0 ? Power::kOne
                                                : Power::kGeneral;
    r.l1 = static_cast<C>(l1);
    const C l2_reg = static_cast<C>(l2) + static_cast<C>(beta) / (C(2) * r.lr);
    r.two_l2_reg = C(2) * l2_reg;
    r.two_shrinkage = static_cast<C>(2.0 * l2_shrinkage);
    return r;
  }

  KERASOPT_HOST_DEVICE C Pow(C x) const {
    // Plain ifs on loop-invariant flags (not a switch): the compiler unswitches
    // the loop, so the sqrt and constant cases vectorize without the pow call.
    if (power_kind == Power::kGeneral) {
      return static_cast<C>(std::pow(static_cast<double>(x), static_cast<double>(power)));
    }
    return power_kind == Power::kSqrt ? std::sqrt(x) : C(1);
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& n, C& z, C g) const {
    const C g_shrunk = g + two_shrinkage * w;
    const C n_new = n + g * g;
    const C p_new = Pow(n_new);
    z = z + (g_shrunk - ((p_new - Pow(n)) / lr) * w);
    const C quadratic = p_new / lr + two_l2_reg;
    // tf.clip_by_value: max(min(z, l1), -l1).
    C clipped = z < l1 ? z : l1;
    clipped = clipped > -l1 ? clipped : -l1;
    w = (clipped - z) / quadratic;
    n = n_new;
  }
};

struct Ftrl : RuleDeclaration<FtrlRule> {
  static constexpr Scalars<5> kScalars{"learning_rate_power", "l1", "l2", "l2_shrinkage", "beta"};
  static constexpr Slots<2> kSlots{{{"accumulator"}, {"linear"}}};
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
