// Adadelta (Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method",
// Algorithm 1), as Keras 3 does it.
//
// Per element, with hyperparameters lr, rho, eps:
//   Eg  = rho * Eg + (1 - rho) * g^2                       (accumulated_grad)
//   dx  = -sqrt(Edx + eps) / sqrt(Eg + eps) * g            (old Edx, new Eg)
//   Edx = rho * Edx + (1 - rho) * dx^2                     (accumulated_delta_var)
//   w  += lr * dx
// Where Keras deviates from the paper (we follow Keras): Zeiler's update is
// w += dx, with no learning rate at all (removing it is the point of the
// method); Keras multiplies dx by learning_rate (default 0.001), so only
// learning_rate=1.0 gives the paper's method. The accumulated dx^2 is the
// unscaled one, as in the paper.
// Computed as w -= lr * (sqrt(Edx + eps) * g / sqrt(Eg + eps)): negating is
// exact, so this rounds exactly like Keras's w + lr * (-(...)), and float32
// results match keras.optimizers.Adadelta exactly.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdadeltaRule {
  static constexpr int kNumSlots = 2;  // accumulated_grad, accumulated_delta_var

  C lr;
  C rho;
  C one_minus_rho;  // 1 - rho, computed in double as Keras does in Python
  C epsilon;

  KERASOPT_HOST_DEVICE static AdadeltaRule Make(const SharedInputs& in, double rho, double epsilon) {
    const double lr = in.learning_rate;
    AdadeltaRule r;
    r.lr = static_cast<C>(lr);
    r.rho = static_cast<C>(rho);
    r.one_minus_rho = static_cast<C>(1.0 - rho);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& eg, C& edx, C g) const {
    eg = rho * eg + one_minus_rho * (g * g);
    const C delta = (std::sqrt(edx + epsilon) * g) / std::sqrt(eg + epsilon);
    edx = rho * edx + one_minus_rho * (delta * delta);
    w -= lr * delta;
  }
};

struct Adadelta : RuleDeclaration<AdadeltaRule> {
  static constexpr Scalars<2> kScalars{"rho", "epsilon"};
  static constexpr Slots<2> kSlots{{{"accumulated_grad"}, {"accumulated_delta_var"}}};
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
