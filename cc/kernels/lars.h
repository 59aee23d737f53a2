// LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, "Large Batch
// Training of Convolutional Networks", 2017, arXiv:1708.03888, Algorithm 1 and
// eq. 6), with momentum and weight decay folded in as in the paper.
//
// Per step, per variable ("layer"), with hyperparameters lr (the global rate
// gamma_t), momentum m, weight decay beta, trust coefficient eta:
//   lambda = eta * ||w|| / (||g|| + beta * ||w||)  if ||w|| > 0 and ||g|| > 0,
//            else 1                                 (the usual convention)
//   u      = g + beta * w
//   v      = m * v + (lr * lambda) * u
//   w     -= v                                    (heavy ball, Algorithm 1)
//   w     -= m * v + (lr * lambda) * u            (nesterov, with the new v)
// Norms over the whole variable, of w before the update and of the raw g.
// A variable excluded from layer adaptation has lambda = 1; one excluded from
// weight decay has beta = 0 (in lambda and in u). Without momentum (m = 0)
// there is no v: w -= (lr * lambda) * u.
//
// Precision: per-element math in the compute type (float for 16-bit storage);
// the squares of the norms are summed in double by the deterministic block tree
// of cc/cpu/apply_with_norms.h and the norms rounded once to the compute type;
// lambda and lr * lambda are computed once per variable, in the compute type.
//
// The rule is split for the two-pass drivers (cc/cpu/apply_after_norms.h,
// cc/cuda/input_norms_driver.cuh): NormTerms (w and g, whose squares are
// summed), Finish (norms -> lr * lambda), and a per-element operator() that
// takes that scale.
#pragma once

#include <array>
#include <cmath>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct LarsRule {
  static constexpr int kNumSlots = 1;  // momentum (absent when momentum == 0)
  static constexpr int kNumNorms = 2;  // ||w||, ||g||

  C lr;
  C momentum;
  C weight_decay;  // beta; 0 for a variable excluded from weight decay
  C eta;
  bool use_momentum;
  bool nesterov;
  bool layer_adaptation;  // false: lambda = 1, no norms needed

  KERASOPT_HOST_DEVICE static LarsRule Make(const SharedInputs& in, double momentum,
                                            double weight_decay, double eta, bool nesterov,
                                            bool layer_adaptation) {
    const double lr = in.learning_rate;
    LarsRule r;
    r.lr = static_cast<C>(lr);
    r.momentum = static_cast<C>(momentum);
    r.weight_decay = static_cast<C>(weight_decay);
    r.eta = static_cast<C>(eta);
    r.use_momentum = momentum != 0.0;
    r.nesterov = nesterov;
    r.layer_adaptation = layer_adaptation;
    return r;
  }

  KERASOPT_HOST_DEVICE bool NeedsNorms() const { return layer_adaptation; }

  KERASOPT_HOST_DEVICE void NormTerms(C w, C g, C* terms) const {
    terms[0] = w;
    terms[1] = g;
  }

  // sums = {sum w^2, sum g^2} (double); returns lr * lambda.
  KERASOPT_HOST_DEVICE C Finish(const std::array<double, kNumNorms>& sums) const {
    if (!layer_adaptation) return lr;
    const C w_norm = static_cast<C>(std::sqrt(sums[0]));
    const C g_norm = static_cast<C>(std::sqrt(sums[1]));
    const C local = (w_norm > C(0) && g_norm > C(0))
                        ? (eta * w_norm) / (g_norm + weight_decay * w_norm)
                        : C(1);
    return lr * local;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& v, C g, C scale) const {
    const C u = g + weight_decay * w;
    if (!use_momentum) {
      w -= scale * u;
      return;
    }
    v = momentum * v + scale * u;
    if (nesterov) {
      w -= momentum * v + scale * u;
    } else {
      w -= v;
    }
  }
};

struct Lars : RuleDeclaration<LarsRule> {
  // weight_decay: 0 for a variable excluded from weight decay.
  static constexpr Scalars<3> kScalars{"momentum", "weight_decay", "eta"};
  // layer_adaptation false: local rate 1, no norms (an excluded variable).
  static constexpr Flags<2> kFlags{{{"nesterov"}, {"layer_adaptation", true}}};
  static constexpr Slots<1> kSlots{{{"momentum", Slot::kOptional}}};
  static constexpr Driver kDriver = Driver::kAfterNorms;
  KERASOPT_HOST_DEVICE static const char* Check(bool momentum_slot, double momentum, double,
                                                double, bool, bool) {
    return momentum != 0.0 && !momentum_slot ? "momentum != 0 needs the momentum slot" : nullptr;
  }
};

}  // namespace kerasopt
