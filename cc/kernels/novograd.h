// NovoGrad (Ginsburg et al., "Stochastic Gradient Methods with Layer-wise
// Adaptive Moments for Training of Deep Networks", arXiv:1905.11286,
// Algorithm 1), one variable being one "layer".
//
// Per step t = iterations + 1, with hyperparameters lr, beta_1, beta_2, eps,
// weight decay d, and ||g|| the norm of the whole gradient of the variable:
//   v  = ||g||^2                                  if t == 1
//   v  = beta_2 v + (1 - beta_2) ||g||^2          otherwise     (v: one scalar)
//   u  = g / (sqrt(v) + eps) + d w
//   m  = beta_1 m + u        ((1 - beta_1) u with grad_averaging)
//   w -= lr m
// The paper's first step sets m_1 = g_1 / sqrt(v_1) + d w; with m starting at
// 0 the rule above gives that (plus eps). grad_averaging is the (1 - beta_1)
// factor of NVIDIA's implementations (Apex, OpenSeq2Seq, TF Addons).
// amsgrad (TensorFlow Addons' option): v_hat = max(v_hat, v), one more
// per-variable value, and sqrt(v_hat) + eps is the denominator.
//
// The rule is split for the two-pass drivers (cc/cpu/apply_layerwise.h,
// cc/cuda/input_norms_driver.cuh): the driver sums g^2 over the variable (in
// double, in a fixed order); Finish turns the sum into the new v (kept in the
// layer slot) and the denominator sqrt(v) + eps; operator() updates each
// weight and its momentum.
#pragma once

#include <array>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct NovoGradRule {
  // momentum (per element), velocity and velocity_hat (amsgrad) (per variable)
  static constexpr int kNumSlots = 3;
  static constexpr int kNumLayerSlots = 2;  // the trailing slot(s) hold one value per variable

  struct Layer {
    C denominator;  // sqrt(v) + eps
  };

  C lr;
  C beta_1, one_minus_b2, beta_2;
  C grad_scale;  // 1, or 1 - beta_1 with grad_averaging
  C epsilon;
  C weight_decay;
  bool first_step;
  bool amsgrad;

  KERASOPT_HOST_DEVICE static NovoGradRule Make(const SharedInputs& in, double beta_1,
                                                double beta_2, double epsilon,
                                                double weight_decay, bool grad_averaging,
                                                bool amsgrad) {
    const double lr = in.learning_rate;
    const long long step = in.step;
    NovoGradRule r;
    r.lr = static_cast<C>(lr);
    r.beta_1 = static_cast<C>(beta_1);
    r.beta_2 = static_cast<C>(beta_2);
    r.one_minus_b2 = static_cast<C>(1.0 - beta_2);
    r.grad_scale = static_cast<C>(grad_averaging ? 1.0 - beta_1 : 1.0);
    r.epsilon = static_cast<C>(epsilon);
    r.weight_decay = static_cast<C>(weight_decay);
    r.first_step = step == 1;
    r.amsgrad = amsgrad;
    return r;
  }

  // grad_sq_sum = sum of g^2 over the variable (double); layer[0] = v,
  // layer[1] = v_hat (amsgrad; else unused), updated.
  KERASOPT_HOST_DEVICE Layer Finish(double grad_sq_sum,
                                    std::array<C, kNumLayerSlots>& layer) const {
    const C norm_sq = static_cast<C>(grad_sq_sum);
    C& v = layer[0];
    v = first_step ? norm_sq : beta_2 * v + one_minus_b2 * norm_sq;
    if (!amsgrad) return Layer{std::sqrt(v) + epsilon};
    // The running maximum; a NaN in v propagates (as in AdamRule).
    C& v_hat = layer[1];
    v_hat = v_hat > v ? v_hat : v;
    return Layer{std::sqrt(v_hat) + epsilon};
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C g, const Layer& layer) const {
    const C u = g / layer.denominator + weight_decay * w;
    m = beta_1 * m + grad_scale * u;
    w -= lr * m;
  }
};

struct NovoGrad : RuleDeclaration<NovoGradRule> {
  static constexpr Scalars<4> kScalars{"beta_1", "beta_2", "epsilon", "weight_decay"};
  static constexpr Flags<2> kFlags{{{"grad_averaging"}, {"amsgrad"}}};
  // velocity and velocity_hat hold one value per variable (shape ()).
  static constexpr Slots<3> kSlots{{{"momentum"}, {"velocity"}, {"velocity_hat", /*amsgrad*/ 1}}};
  static constexpr bool kUsesStep = true;
  static constexpr Driver kDriver = Driver::kLayerwise;
};

}  // namespace kerasopt
