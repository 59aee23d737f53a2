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

namespace kerasopt {

template <typename C>
struct SgdRule {
  static constexpr int kNumSlots = 1;  // momentum (absent when momentum == 0)

  C lr;
  C momentum;
  bool use_momentum;
  bool nesterov;

  KERASOPT_HOST_DEVICE static SgdRule Make(double lr, double momentum, bool nesterov) {
    SgdRule r;
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

}  // namespace kerasopt
