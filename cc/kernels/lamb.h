// LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT
// in 76 minutes", ICLR 2020, arXiv:1904.00962, Algorithm 2), as Keras 3 has it.
//
// Per step t = iterations + 1, per variable ("layer"), with hyperparameters
// lr, beta_1, beta_2, eps:
//   m     += (g - m) * (1 - beta_1)            (= beta_1 m + (1 - beta_1) g)
//   v     += (g^2 - v) * (1 - beta_2)
//   r      = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)
//   ratio  = ||w|| / ||r||   if ||w|| > 0 and ||r|| > 0, else 1
//   w     -= (ratio * lr) * r
// with both norms over the whole variable and ||w|| taken before the update.
//
// Where Keras deviates from the paper (we follow Keras): the paper's update is
// (phi(||w||) / ||r + lambda w||) (r + lambda w) with a scaling function phi
// (e.g. clipping to [gamma_l, gamma_u]); Keras has phi = identity, no lambda
// inside the ratio (its generic, decoupled weight_decay runs before the step),
// and ratio = 1 when either norm is 0.
//
// The paper's decay inside the ratio is an option (TensorFlow Addons' LAMB:
// weight_decay_rate, lambda), and so is leaving a variable out of the layer
// adaptation (TFA's exclude_from_layer_adaptation: ratio = 1):
//   r     = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps) + lambda w
//   ratio = ||w|| / ||r||   (layer_adaptation; 1 when a norm is 0), else 1
// lambda = 0 adds nothing (not 0 * w: an infinite weight stays infinite).
//
// Precision: per-element math in the compute type (float for 16-bit storage,
// in Keras's operation order); the squares of the norms are summed in double
// (cc/cpu/apply_with_norms.h) and the norms rounded once to the compute type.
// Keras sums float32 squares in float32, so float32 results agree with Keras
// to a few ulps of the ratio, not bit for bit.
//
// The rule is split for the two-pass driver: Update (moments), NormTerms
// (w and r, whose squares are summed), Finish (norms -> ratio * lr), Apply
// (w -= (ratio * lr) * r).
#pragma once

#include <array>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct LambRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity
  static constexpr int kNumNorms = 2;  // ||w||, ||r||
  static constexpr int kStepTerm = 1;  // Apply takes r

  C one_minus_b1;  // 1 - beta_1
  C one_minus_b2;  // 1 - beta_2
  C b1_correction;  // 1 - beta_1^t
  C b2_correction;  // 1 - beta_2^t
  C epsilon;
  C lr;
  C weight_decay_rate;  // lambda, inside r
  bool decays;          // lambda != 0
  bool layer_adaptation;

  KERASOPT_HOST_DEVICE static LambRule Make(const SharedInputs& in, double beta_1, double beta_2,
                                            double epsilon, double weight_decay_rate,
                                            bool layer_adaptation) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    const C t = static_cast<C>(step);
    LambRule r;
    r.one_minus_b1 = static_cast<C>(1.0 - beta_1);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.b1_correction = C(1) - std::pow(static_cast<C>(beta_1), t);
    r.b2_correction = C(1) - std::pow(static_cast<C>(beta_2), t);
    r.epsilon = static_cast<C>(epsilon);
    r.lr = static_cast<C>(lr);
    r.weight_decay_rate = static_cast<C>(weight_decay_rate);
    r.decays = weight_decay_rate != 0.0;
    r.layer_adaptation = layer_adaptation;
    return r;
  }

  KERASOPT_HOST_DEVICE void Update(C /*w*/, C& m, C& v, C g) const {
    m += (g - m) * one_minus_b1;
    v += (g * g - v) * one_minus_b2;
  }

  KERASOPT_HOST_DEVICE C Direction(C w, C m, C v) const {
    const C r = (m / b1_correction) / (std::sqrt(v / b2_correction) + epsilon);
    return decays ? r + weight_decay_rate * w : r;
  }

  KERASOPT_HOST_DEVICE void NormTerms(C w, C m, C v, C* terms) const {
    terms[0] = w;
    terms[1] = Direction(w, m, v);
  }

  // sums = {sum w^2, sum r^2} (double); returns ratio * lr.
  KERASOPT_HOST_DEVICE C Finish(const std::array<double, kNumNorms>& sums) const {
    if (!layer_adaptation) return lr;
    const C w_norm = static_cast<C>(std::sqrt(sums[0]));
    const C r_norm = static_cast<C>(std::sqrt(sums[1]));
    const C ratio = (w_norm > C(0) && r_norm > C(0)) ? w_norm / r_norm : C(1);
    return ratio * lr;
  }

  KERASOPT_HOST_DEVICE void Apply(C& w, C r, C scale) const { w -= scale * r; }
};

struct Lamb : RuleDeclaration<LambRule> {
  static constexpr Scalars<4> kScalars{"beta_1", "beta_2", "epsilon", "weight_decay_rate"};
  static constexpr ScalarDefaults<1> kScalarDefaults{{{"weight_decay_rate", 0.0}}};
  static constexpr Flags<1> kFlags{{{"layer_adaptation", true}}};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
  static constexpr Driver kDriver = Driver::kWithNorms;
};

}  // namespace kerasopt
