// Schedule-Free AdamW and SGD (Defazio et al., "The Road Less Scheduled",
// NeurIPS 2024, arXiv:2405.15682, Algorithm 1), as Keras 3.15 has
// ScheduleFreeAdamW. Two declared rules on one shared part
// (ScheduleFreeAverage: the decay, the warmup, the average and the
// interpolation); they differ only in z's step (AdamW's second moment; SGD
// has no velocity slot).
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
// How Grappler groups that product depends on the variable's shape (found by
// comparing with Keras's traced graph, tests/test_keras315_in_keras.py):
//   more than one element:  x = s * ((1 - 1/t) * (1 / beta_1)) + (1/t) * z'
//   one element, rank >= 1: x = ((1 - 1/t) * s) * (1 / beta_1) + (1/t) * z'
//   shape ():               x = (1 - 1/t) * (s * (1 / beta_1)) + (1/t) * z'
// (the decay's grouping depends on the element count only: decoupled_decay.h).
// The ops see the element count but not the rank, so the optimizer says
// whether the variable has shape () with the flag `scalar_variable`.
#pragma once

#include <cmath>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/decoupled_decay.h"

namespace kerasopt {

// What both rules share: y's decay, lr_t (the warmup), and the step from
// (y, z, z') to the new y, given z's new value.
template <typename C>
struct ScheduleFreeAverage {
  DecoupledDecay<C> decay;
  C lr;  // lr_t, with the warmup
  C beta_1, one_minus_b1;
  C weight;            // 1/t
  C one_minus_weight;  // 1 - 1/t
  C inverse_b1;        // 1 / beta_1, rounded (the division by beta_1, folded)
  // x_old's part (1 - 1/t) * s / beta_1 is computed as (left * s) * right,
  // one form for the three groupings, so the loop has no branch for them:
  //   more than one element:  left = 1,         right = (1 - 1/t) * (1 / beta_1)
  //   one element, rank >= 1: left = 1 - 1/t,   right = 1 / beta_1
  //   shape ():               left = 1 / beta_1, right = 1 - 1/t
  // (1 * s is s exactly, and a product rounds the same in either order).
  C left, right;
  bool interpolate;
  bool scalar_variable;

  KERASOPT_HOST_DEVICE static ScheduleFreeAverage Make(const SharedInputs& in,
                                                       double weight_decay, double beta_1,
                                                       double warmup_steps, bool interpolate,
                                                       bool scalar_variable) {
    const C t = static_cast<C>(in.step);
    ScheduleFreeAverage r;
    r.decay = DecoupledDecay<C>::Make(in.learning_rate, weight_decay, in.num_elements);
    r.lr = static_cast<C>(in.learning_rate);
    if (warmup_steps > 0) {
      const C factor = t * (C(1) / static_cast<C>(warmup_steps));
      r.lr = r.lr * (factor < C(1) ? factor : C(1));
    }
    r.beta_1 = static_cast<C>(beta_1);
    r.one_minus_b1 = C(1) - r.beta_1;
    r.weight = C(1) / t;
    r.one_minus_weight = C(1) - r.weight;
    r.inverse_b1 = C(1) / r.beta_1;
    r.interpolate = interpolate;
    r.scalar_variable = scalar_variable;
    r.ForVariable(in.num_elements);
    return r;
  }

  // Both groupings (the decay's, x_old's) depend on the variable's size.
  KERASOPT_HOST_DEVICE void ForVariable(long long num_elements) {
    decay.factor_first = num_elements > 1;
    if (num_elements > 1) {
      left = C(1);
      right = one_minus_weight * inverse_b1;  // x_old's weight, with its division
    } else if (scalar_variable) {
      left = inverse_b1;
      right = one_minus_weight;
    } else {
      left = one_minus_weight;
      right = inverse_b1;
    }
  }

  // y (already decayed) and z after z's step z_new.
  KERASOPT_HOST_DEVICE void Finish(C& y, C& z, C z_new) const {
    const C s = y - one_minus_b1 * (interpolate ? z : z_new);
    const C x = (left * s) * right + weight * z_new;
    y = one_minus_b1 * z_new + beta_1 * x;
    z = z_new;
  }
};

// Value checks both declarations make: x = (y - (1 - beta_1) z) / beta_1
// needs beta_1 != 0 (the optimizers refuse it when built; a hyperparameter
// variable may still be assigned it), and a warmup is a count of steps.
KERASOPT_HOST_DEVICE const char* CheckScheduleFree(double beta_1, double warmup_steps) {
  if (!(beta_1 > 0.0 && beta_1 <= 1.0)) return "beta_1 must be in (0, 1]";
  if (!(warmup_steps >= 0.0)) return "warmup_steps must be >= 0";
  return nullptr;
}

// The groupings depend on the variable's size: the multi-tensor ops set it
// per variable (scalar_variable is a flag: shape () variables get their own op).
template <typename Rule>
void ScheduleFreeForVariable(long long num_elements, Rule* rule) {
  rule->average.ForVariable(num_elements);
}

}  // namespace kerasopt
