// Stochastic gradient descent, with optional heavy-ball momentum (Polyak, 1964)
// and Nesterov momentum (Sutskever et al., 2013 formulation), as Keras 3 does it.
//
//   no momentum:  w -= lr * g
//   momentum mu:  m  = mu * m - lr * g
//                 w += m                         (heavy ball)
//                 w += mu * m - lr * g           (nesterov, with the new m)
// The operation order is Keras 3's, so float32 results match keras.optimizers.SGD.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct SGDRule {
  static constexpr int kNumSlots = 1;  // momentum (absent when momentum == 0)

  C lr;
  C momentum;
  bool use_momentum;
  bool nesterov;

  KERASOPT_HOST_DEVICE static SGDRule Make(const SharedInputs& in, double momentum, bool nesterov) {
    const double lr = in.learning_rate;
    SGDRule r;
    r.lr = static_cast<C>(lr);
    r.momentum = static_cast<C>(momentum);
    r.use_momentum = momentum != 0.0;
    r.nesterov = nesterov;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C g) const {
    if (!use_momentum) {
      w -= g * lr;
      return;
    }
    m = m * momentum - g * lr;
    if (nesterov) {
      w += m * momentum - g * lr;
    } else {
      w += m;
    }
  }
};

struct SGD : RuleDeclaration<SGDRule> {
  static constexpr Scalars<1> kScalars{"momentum"};
  static constexpr Flags<1> kFlags{{{"nesterov"}}};
  static constexpr Slots<1> kSlots{{{"momentum", Slot::kOptional}}};
  static constexpr bool kSparse = true;
  KERASOPT_HOST_DEVICE static const char* Check(bool momentum_slot, double momentum, bool) {
    return momentum != 0.0 && !momentum_slot ? "momentum != 0 needs the momentum slot" : nullptr;
  }
};

}  // namespace kerasopt
