// Adafactor (Shazeer & Stern, "Adafactor: Adaptive Learning Rates with
// Sublinear Memory Cost", ICML 2018, arXiv:1804.04235, Algorithms 4 and 5),
// as Keras 3.15 has it.
//
// Per step t = iterations + 1, with learning rate lr and beta_2_decay,
// epsilon_1, epsilon_2, clip_threshold d:
//   rho   = min(lr, 1 / sqrt(t))                  (the paper: min(1e-2, 1/sqrt(t)))
//   alpha = max(epsilon_2, RMS(w)) * rho          (w before the update)
//   beta  = 1 - t^beta_2_decay
//   G2    = g^2 + epsilon_1
//   rank >= 2, per index of the leading axes, the last two factored:
//     r = beta * r + (1 - beta) * mean(G2, axis=-1)        (row means)
//     c = beta * c + (1 - beta) * mean(G2, axis=-2)        (column means)
//     v = (r_i / mean(r)) * c_j
//   rank < 2:
//     v = beta * v + (1 - beta) * G2
//   u = g / sqrt(v)                               (0 where v == 0; Keras: NaN)
//   w -= alpha * (u / max(1, RMS(u) / d))
// RMS(x) = sqrt(mean(x^2)) over the whole variable. The paper's row and column
// sums R, C and V = R C / sum(R) give the same v as Keras's means.
//
// The rule is the per-element and per-variable arithmetic; a driver sums.
// Every mean is a sum in double, divided in double and rounded once to the
// compute type (Keras sums float32 in float32, so results agree with Keras to
// float32 rounding, not bit for bit), in this order, which
// kerasopt/fallback/adafactor.py reproduces with TensorFlow ops:
//   * over the whole variable (RMS(w), RMS(u)): squares in double, blocks of
//     kBlock elements from element 0 summed by the halving tree of
//     cc/cpu/apply_with_norms.h, block partials in block order;
//   * along the last axis (row sums of G2, the sum of r): the same per row;
//   * along axis -2 (column sums of G2): in row order within chunks of
//     kRowsPerChunk rows, then the chunks in order.
// So the bits are the same for any number of threads. Keras's operation
// order is kept for everything else.
#pragma once

#include <array>
#include <cmath>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdafactorRule {
  static constexpr int kNumSlots = 3;       // r, c, velocity (rank < 2: velocity alone)
  static constexpr int kRowsPerChunk = 64;  // the column sums' chunks
  static constexpr int kNumNorms = 2;       // sum w^2, sum u^2

  C rho;
  C beta, one_minus_beta;
  C epsilon_1, epsilon_2;
  C inverse_clip;  // 1 / clip_threshold, rounded: Grappler's constant folding
                   // turns Keras's (and the fallback's) division by it into this
  long long num_elements;

  // What Finish gives the apply pass.
  struct Step {
    C alpha;
    C clip;  // max(1, RMS(u) / d)
  };

  // From the op's inputs (cc/kernels/declaration.h): in.step = t,
  // in.num_elements the variable's size (the count of both RMS means).
  KERASOPT_HOST_DEVICE static AdafactorRule Make(const SharedInputs& in, double beta_2_decay,
                                                 double epsilon_1, double epsilon_2,
                                                 double clip_threshold) {
    const C t = static_cast<C>(in.step);
    AdafactorRule r;
    const C lr_c = static_cast<C>(in.learning_rate);
    const C relative = C(1) / std::sqrt(t);
    r.rho = relative < lr_c ? relative : lr_c;  // a NaN learning rate propagates, as tf.minimum
    r.beta = C(1) - std::pow(t, static_cast<C>(beta_2_decay));
    r.one_minus_beta = C(1) - r.beta;
    r.epsilon_1 = static_cast<C>(epsilon_1);
    r.epsilon_2 = static_cast<C>(epsilon_2);
    r.inverse_clip = C(1) / static_cast<C>(clip_threshold);
    r.num_elements = in.num_elements;
    return r;
  }

  // sum / count, rounded once (0 for an empty axis, where Keras gives NaN).
  KERASOPT_HOST_DEVICE static C Mean(double sum, long long count) {
    return count > 0 ? static_cast<C>(sum / static_cast<double>(count)) : C(0);
  }

  // sqrt(sum / count), rounded once.
  KERASOPT_HOST_DEVICE static C Rms(double sum_of_squares, long long count) {
    return count > 0 ? static_cast<C>(std::sqrt(sum_of_squares / static_cast<double>(count)))
                     : C(0);
  }

  KERASOPT_HOST_DEVICE C Regulated(C g) const { return g * g + epsilon_1; }

  // The moving average of r, c (with a mean of G2) and the unfactored v (with G2).
  KERASOPT_HOST_DEVICE C Average(C old, C fresh) const {
    return beta * old + one_minus_beta * fresh;
  }

  // Factored v from row i's r, the mean of r over its rows, and column j's c.
  KERASOPT_HOST_DEVICE static C Velocity(C r_i, C r_mean, C c_j) { return (r_i / r_mean) * c_j; }

  // g / sqrt(v), 0 where v == 0 (epsilon_1 == 0 and a zero gradient; Keras:
  // NaN), as tf.math.divide_no_nan in the fallback.
  // Both selects pick between values already computed (the division by 1
  // where root == 0 is discarded), so the drivers' loops vectorize.
  KERASOPT_HOST_DEVICE static C Direction(C g, C v) {
    const C root = std::sqrt(v);
    const bool zero = root == C(0);
    const C quotient = g / (zero ? C(1) : root);
    return zero ? C(0) : quotient;
  }

  // sums = {sum w^2, sum u^2} over the whole variable.
  KERASOPT_HOST_DEVICE Step Finish(const std::array<double, kNumNorms>& sums) const {
    const C rms_w = Rms(sums[0], num_elements);
    const C rms_u = Rms(sums[1], num_elements);
    Step s;
    s.alpha = (epsilon_2 > rms_w ? epsilon_2 : rms_w) * rho;
    const C ratio = rms_u * inverse_clip;
    s.clip = C(1) > ratio ? C(1) : ratio;
    return s;
  }

  KERASOPT_HOST_DEVICE static void Apply(C& w, C u, const Step& s) { w -= s.alpha * (u / s.clip); }
  // Apply where s.clip == 1 (u / 1 == u exactly).
  KERASOPT_HOST_DEVICE static void ApplyUnclipped(C& w, C u, const Step& s) { w -= s.alpha * u; }
};

// Its op, KerasoptApplyAdafactor (cc/tf/factored_apply_op.h), takes r, c and
// velocity for a variable of rank >= 2 (r: shape[:-1], c: shape[:-2] +
// shape[-1:]) and velocity alone below (Keras's int32 placeholders for r and
// c are not passed): num_slots 3 or 1, checked against the variable's rank.
struct Adafactor : RuleDeclaration<AdafactorRule> {
  static constexpr Scalars<4> kScalars{"beta_2_decay", "epsilon_1", "epsilon_2",
                                       "clip_threshold"};
  static constexpr Slots<3> kSlots{
      {{"r", Slot::kOptional}, {"c", Slot::kOptional}, {"velocity"}}};
  static constexpr bool kUsesStep = true;
  static constexpr Driver kDriver = Driver::kFactored;
  // kerasopt.Adafactor's own checks, for callers of the op.
  KERASOPT_HOST_DEVICE static const char* Check(bool, double beta_2_decay, double epsilon_1,
                                                double epsilon_2, double clip_threshold) {
    if (!(beta_2_decay <= 0)) return "beta_2_decay must be <= 0";
    if (!(epsilon_1 >= 0)) return "epsilon_1 must be >= 0";
    if (!(epsilon_2 >= 0)) return "epsilon_2 must be >= 0";
    if (!(clip_threshold > 0)) return "clip_threshold must be > 0";
    return nullptr;
  }
};

}  // namespace kerasopt
