// RMSprop (Tieleman & Hinton, 2012, Coursera "Neural Networks for Machine
// Learning", lecture 6.5), with the centered variant of Graves (2013,
// "Generating Sequences With Recurrent Neural Networks", eqs. 38-41) and
// optional plain (heavy-ball) momentum, as Keras 3 does it.
//
// Per element, with hyperparameters lr, rho, momentum mu, eps:
//   v  = rho * v + (1 - rho) * g^2                 (mean square of g)
//   a  = rho * a + (1 - rho) * g                    (centered only: mean of g)
//   d  = v - a^2 + eps   (centered)   or   v + eps  (not centered)
//   inc = lr * g / sqrt(d)
//   m  = mu * m + inc;  w -= m                      (momentum > 0)
//   w -= inc                                        (momentum == 0)
// Where Keras deviates from the papers (we follow Keras):
// * the lecture divides by sqrt(v) and has no epsilon; Keras adds eps INSIDE
//   the square root (as Graves does in the centered form);
// * the lecture has no momentum; Keras's is Graves's form (the momentum
//   accumulates the normalised step), with the sign flipped: m holds +inc and
//   is subtracted. Keras's momentum slot exists only when momentum > 0;
// * eps (1e-7 by default) is Keras's, Graves uses 1e-4.
// The operation order is Keras 3's, so float32 results match
// keras.optimizers.RMSprop exactly.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct RMSpropRule {
  static constexpr int kNumSlots = 3;  // velocity, momentum, average_gradient

  C lr;
  C rho;
  C one_minus_rho;  // 1 - rho, computed in double as Keras does in Python
  C momentum;
  C epsilon;
  bool use_momentum;
  bool centered;

  KERASOPT_HOST_DEVICE static RMSpropRule Make(const SharedInputs& in, double rho, double momentum,
                                              double epsilon, bool centered) {
    const double lr = in.learning_rate;
    RMSpropRule r;
    r.lr = static_cast<C>(lr);
    r.rho = static_cast<C>(rho);
    r.one_minus_rho = static_cast<C>(1.0 - rho);
    r.momentum = static_cast<C>(momentum);
    r.epsilon = static_cast<C>(epsilon);
    r.use_momentum = momentum > 0.0;
    r.centered = centered;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& v, C& m, C& a, C g) const {
    v = rho * v + one_minus_rho * (g * g);
    C denominator;
    if (centered) {
      a = rho * a + one_minus_rho * g;
      denominator = (v - a * a) + epsilon;
    } else {
      denominator = v + epsilon;
    }
    const C increment = (lr * g) / std::sqrt(denominator);
    if (use_momentum) {
      m = momentum * m + increment;
      w -= m;
    } else {
      w -= increment;
    }
  }
};

struct RMSprop : RuleDeclaration<RMSpropRule> {
  static constexpr Scalars<3> kScalars{"rho", "momentum", "epsilon"};
  static constexpr Flags<1> kFlags{{{"centered"}}};
  static constexpr Slots<3> kSlots{
      {{"velocity"}, {"momentum", Slot::kOptional}, {"average_gradient", /*centered*/ 0}}};
  static constexpr bool kSparse = true;
  // The momentum slot is passed exactly when momentum > 0.
  KERASOPT_HOST_DEVICE static const char* Check(bool momentum_slot, double, double momentum,
                                                double, bool) {
    if (momentum > 0.0 && !momentum_slot) return "momentum > 0 needs the momentum slot";
    if (momentum <= 0.0 && momentum_slot) {
      return "takes no momentum slot unless momentum > 0";
    }
    return nullptr;
  }
};

}  // namespace kerasopt
