// Adagrad (Duchi, Hazan & Singer, 2011, "Adaptive Subgradient Methods for
// Online Learning and Stochastic Optimization"), diagonal form, as Keras 3 does it.
//
// Per element, with hyperparameters lr, eps (the accumulator starts at
// initial_accumulator_value, set when the slot is created):
//   acc += g^2
//   w   -= lr * g / sqrt(acc + eps)
// Where Keras deviates from the paper (we follow Keras): the paper's diagonal
// update is w -= eta * g / (delta + sqrt(sum g^2)), with delta OUTSIDE the
// root and the sum starting at 0; Keras puts eps inside the root and starts the
// sum at initial_accumulator_value (0.1 by default).
// The operation order is Keras 3's, so float32 results match
// keras.optimizers.Adagrad exactly.
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdagradRule {
  static constexpr int kNumSlots = 1;  // accumulator

  C lr;
  C epsilon;

  KERASOPT_HOST_DEVICE static AdagradRule Make(const SharedInputs& in, double epsilon) {
    const double lr = in.learning_rate;
    AdagradRule r;
    r.lr = static_cast<C>(lr);
    r.epsilon = static_cast<C>(epsilon);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& acc, C g) const {
    acc += g * g;
    w -= (lr * g) / std::sqrt(acc + epsilon);
  }
};

struct Adagrad : RuleDeclaration<AdagradRule> {
  static constexpr Scalars<1> kScalars{"epsilon"};
  static constexpr Slots<1> kSlots{{{"accumulator"}}};
  static constexpr bool kSparse = true;
};

}  // namespace kerasopt
