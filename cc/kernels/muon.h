// Muon (Jordan et al. 2024, github.com/KellerJordan/Muon) with Moonlight's
// update scaling (Liu et al. 2025, "Muon is Scalable for LLM Training",
// arXiv:2502.16982), as Keras 3.15 has it: the element-wise parts of the
// Muon step around the Newton-Schulz iterations, and its AdamW side.
//
// Muon step for a 2-D weight (rows x cols), with lr, weight decay wd and
// momentum mu:
//   w  -= w * wd * lr                                (decoupled_decay.h)
//   m  += g + m * (mu - 1)                           (= mu m + g)
//   d   = g + mu * m   (Nesterov)   or   m
//   x   = d / (||d||_F + 1e-7)      in the orientation rows <= cols
//   ns_steps times:  A = x x^T;  x = a * x + (b * A + (c * A) A) x
//   w  -= x * (lr * (sqrt(max(rows, cols)) * rms_rate))   (rms_rate absent: lr * x)
// ||d||_F is summed in double as cc/kernels/adafactor.h's whole-variable sums
// (and kerasopt/fallback/muon.py's); the matrix products are the op's.
// Keras's float32 operation order is kept element by element (mu - 1 is formed
// in double, as Keras's Python float), so results agree with Keras to the
// rounding of the norm and of the products.
//
// AdamW side (variables that are not 2-D, embeddings, excluded layers):
//   w  -= w * adam_wd * lr;  then Adam (adam.h) with lr * adam_lr_ratio.
// It is a declared element-wise rule (MuonAdamW below): its ops
// KerasoptApplyMuonAdamW / KerasoptMultiApplyMuonAdamW come from the
// declaration. The Muon side runs as cc/tf/muon_ops.cc's ops around
// TensorFlow's matrix products (kerasopt/optimizers/muon_step.py).
#pragma once

#include <cmath>

#include "cc/kernels/adam.h"
#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/decoupled_decay.h"

namespace kerasopt {

template <typename C>
struct MuonRule {
  static constexpr int kNumSlots = 1;  // momentum
  static constexpr double kNormEpsilon = 1e-7;

  DecoupledDecay<C> decay;
  C mu, mu_minus_one;
  bool nesterov;
  C a, b, c;  // the quintic's coefficients
  C lr;
  C step_scale;  // lr * (sqrt(max(rows, cols)) * rms_rate), or lr without rms_rate

  KERASOPT_HOST_DEVICE static MuonRule Make(double lr, double weight_decay, double momentum,
                                            bool nesterov, double a, double b, double c,
                                            bool scaled, double rms_rate, long long rows,
                                            long long cols) {
    MuonRule r;
    r.decay = DecoupledDecay<C>::Make(lr, weight_decay, rows * cols);
    r.mu = static_cast<C>(momentum);
    r.mu_minus_one = static_cast<C>(momentum - 1.0);
    r.nesterov = nesterov;
    r.a = static_cast<C>(a);
    r.b = static_cast<C>(b);
    r.c = static_cast<C>(c);
    r.lr = static_cast<C>(lr);
    const C size_scale = std::sqrt(static_cast<C>(rows > cols ? rows : cols));
    r.step_scale = scaled ? r.lr * (size_scale * static_cast<C>(rms_rate)) : r.lr;
    return r;
  }

  // Before the iterations, per element: the momentum, and the direction d.
  KERASOPT_HOST_DEVICE C Momentum(C& m, C g) const {
    m += g + m * mu_minus_one;
    return nesterov ? g + mu * m : m;
  }

  // x_0 = d / (||d||_F + 1e-7), from sum d^2 (double).
  KERASOPT_HOST_DEVICE static C NormDenominator(double sum_of_squares) {
    return static_cast<C>(std::sqrt(sum_of_squares)) + static_cast<C>(kNormEpsilon);
  }

  // The iteration's element-wise parts: c * A; b * A + (c A) A; a * x + B x.
  KERASOPT_HOST_DEVICE C ScaleGram(C gram) const { return c * gram; }
  KERASOPT_HOST_DEVICE C Polynomial(C gram, C scaled_square) const {
    return b * gram + scaled_square;
  }
  KERASOPT_HOST_DEVICE C Next(C x, C polynomial_times_x) const { return a * x + polynomial_times_x; }

  // After the iterations, per element: decay and the scaled step. Keras
  // writes (lr * x) * sqrt(max) * rms_rate; Grappler folds the constants and
  // multiplies the scalars first, x * (lr * (sqrt(max) * rms_rate)), and so
  // does this (without rms_rate: lr * x).
  KERASOPT_HOST_DEVICE void Apply(C& w, C x) const {
    decay(w);
    w -= x * step_scale;
  }
};

template <typename C>
struct MuonAdamwRule {
  static constexpr int kNumSlots = 2;  // momentum, velocity

  DecoupledDecay<C> decay;
  AdamRule<C> adam;

  KERASOPT_HOST_DEVICE static MuonAdamwRule Make(const SharedInputs& in, double adam_lr_ratio,
                                                 double weight_decay, double beta_1,
                                                 double beta_2, double epsilon) {
    MuonAdamwRule r;
    r.decay = DecoupledDecay<C>::Make(in.learning_rate, weight_decay, in.num_elements);
    // lr * adam_lr_ratio in the compute type (Keras: a float32 tensor times a
    // Python number), exact in double, so Adam's cast gives it back.
    const C adam_lr = static_cast<C>(in.learning_rate) * static_cast<C>(adam_lr_ratio);
    r.adam = AdamRule<C>::Make(SharedInputs{static_cast<double>(adam_lr), in.step,
                                            in.num_elements},
                               beta_1, beta_2, epsilon, /*amsgrad=*/false);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C g) const {
    decay(w);
    C unused_v_hat = C(0);
    adam(w, m, v, unused_v_hat, g);
  }
};

// The AdamW side's declaration: ops KerasoptApplyMuonAdamW and
// KerasoptMultiApplyMuonAdamW (weight_decay: 0 for a variable excluded from
// decay, or adam_weight_decay None).
struct MuonAdamW : RuleDeclaration<MuonAdamwRule> {
  static constexpr Scalars<5> kScalars{"adam_lr_ratio", "weight_decay", "beta_1", "beta_2",
                                       "epsilon"};
  static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
  // The decay's rounding depends on the variable's size (decoupled_decay.h).
  template <typename C>
  static void ForVariable(long long num_elements, MuonAdamwRule<C>* rule) {
    rule->decay.factor_first = num_elements > 1;
  }
};

}  // namespace kerasopt
