// Schedule-Free AdamW and SGD (Defazio et al., "The Road Less Scheduled",
// NeurIPS 2024, arXiv:2405.15682, Algorithm 1), as Keras 3.15 has
// ScheduleFreeAdamW. One per-element rule for both (`adam` = AdamW's second
// moment; SGD has no velocity slot).
//
// The weight holds y; the slot `momentum` holds z (initialized to the weights
// by the optimizer); x, the average, is recovered from them. Per step
// t = iterations + 1, with lr_t = lr * min(t / warmup_steps, 1) (lr when
// warmup_steps == 0):
//   y  -= y * wd * lr                                  (decoupled_decay.h)
//   v  += (g^2 - v) * (1 - beta_2)                     (AdamW)
//   z'  = z - (lr_t * g) / (sqrt(v / (1 - beta_2^t)) + eps)   (SGD: z - lr_t * g)
//   x   = (y - (1 - beta_1) * z*) / beta_1             z* = z (interpolate) or z'
//   x   = (1 - 1/t) * x + (1/t) * z'
//   y   = (1 - beta_1) * z' + beta_1 * x;   z = z'
//
// `interpolate` false is Keras 3.15.1's rule as it runs: its x_old reads the
// momentum variable after z's update, which makes y the running average of z
// (the paper's beta = 1, "primal averaging"). True is the paper's rule. Both
// weight the average 1/t (the paper: lr_t^2 / sum lr_i^2) and decay y before
// the step (the paper adds lr_t * wd * y to z's step).
//
// Operation order and the scalars formed in the compute type (1 - beta_1,
// 1 - beta_2, 1/t, 1 - 1/t, the warmup factor) are Keras's as TensorFlow runs
// it in a graph, so float32 results match keras.optimizers.ScheduleFreeAdamW
// bit for bit. Grappler rewrites Keras's graph, and this rule computes what
// the rewritten graph does: constant folding turns a division by a constant
// (beta_1, warmup_steps: Python numbers in Keras) into a multiplication by
// its reciprocal, rounded once; the arithmetic optimizer then regroups
// (1 - 1/t) * (s * (1 / beta_1)) as s * ((1 - 1/t) * (1 / beta_1)), the
// scalars first (s = y - (1 - beta_1) z*). So the update is
//   x = s * old_weight + (1/t) * z',  old_weight = (1 - 1/t) * (1 / beta_1).
#pragma once

#include <cmath>

#include "cc/kernels/common.h"
#include "cc/kernels/decoupled_decay.h"

namespace kerasopt {

template <typename C>
struct ScheduleFreeRule {
  static constexpr int kNumSlots = 2;  // momentum (z), velocity (AdamW only)

  DecoupledDecay<C> decay;
  C lr;  // lr_t, with the warmup
  C beta_1, one_minus_b1;
  C one_minus_b2;
  C b2_correction;  // 1 - beta_2^t
  C epsilon;
  C weight;      // 1/t
  C old_weight;  // (1 - 1/t) * (1 / beta_1): x_old's weight, with its division
  bool adam;
  bool interpolate;

  KERASOPT_HOST_DEVICE static ScheduleFreeRule Make(double lr, double weight_decay,
                                                    double beta_1, double beta_2,
                                                    double epsilon, long long warmup_steps,
                                                    long long step, bool adam, bool interpolate,
                                                    long long num_elements) {
    const C t = static_cast<C>(step);
    ScheduleFreeRule r;
    r.decay = DecoupledDecay<C>::Make(lr, weight_decay, num_elements);
    r.lr = static_cast<C>(lr);
    if (warmup_steps > 0) {
      const C factor = t * (C(1) / static_cast<C>(warmup_steps));
      r.lr = r.lr * (factor < C(1) ? factor : C(1));
    }
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = C(1) - r.beta_1;
    const C beta_2_c = static_cast<C>(beta_2);
    r.one_minus_b2 = C(1) - beta_2_c;
    r.b2_correction = C(1) - std::pow(beta_2_c, t);
    r.epsilon = static_cast<C>(epsilon);
    r.weight = C(1) / t;
    r.old_weight = (C(1) - r.weight) * (C(1) / r.beta_1);
    r.adam = adam;
    r.interpolate = interpolate;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& y, C& z, C& v, C g) const {
    decay(y);
    C z_new;
    if (adam) {
      v += (g * g - v) * one_minus_b2;
      z_new = z - (lr * g) / (std::sqrt(v / b2_correction) + epsilon);
    } else {
      z_new = z - lr * g;
    }
    const C s = y - one_minus_b1 * (interpolate ? z : z_new);
    const C x = s * old_weight + weight * z_new;
    y = one_minus_b1 * z_new + beta_1 * x;
    z = z_new;
  }
};

}  // namespace kerasopt
