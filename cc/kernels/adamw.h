// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled
// Weight Decay Regularization", ICLR 2019), as Keras 3 does it.
//
// Per step t = iterations + 1, with lr, weight decay wd and Adam's beta_1,
// beta_2, eps (see adam.h for the Adam part):
//   w  -= (w * wd) * lr                          (decay first, on the old w)
//   m  += (g - m) * (1 - beta_1)
//   v  += (g^2 - v) * (1 - beta_2)
//   v_hat = max(v_hat, v)                        (AMSGrad only)
//   w  -= alpha_t * m / (sqrt(v) + eps),  alpha_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
//
// Differences from the paper (Keras's choices, followed here): the paper's
// Algorithm 2 decays by eta_t * lambda * w with a schedule multiplier eta_t
// and a separate step size alpha, both applied after the Adam step is formed
// from the old w; Keras multiplies the decay by the learning rate itself
// (eta_t = lr, so the decay follows any learning-rate schedule) and applies
// it to w *before* the Adam step, which then updates the decayed w. Keras
// does the decay as a separate pass over all variables; here it is folded
// into the one fused update, with the same float32 operation order, so
// float32 results still match keras.optimizers.AdamW bit for bit. wd == 0
// (a variable excluded from weight decay) skips the decay.
//
// The decay's rounding follows Keras *as TensorFlow runs it in a graph*
// (tf.function, model.fit): Keras writes w * wd * lr, and Grappler's
// arithmetic optimizer ("minimize broadcasts") regroups it as w * (wd * lr)
// whenever w has more than one element, so the scalar product is rounded
// first. Variables of one element keep (w * wd) * lr. Make() takes the element
// count to choose; eager Keras (no Grappler) can differ in the last bit.
#pragma once

#include "cc/kernels/adam.h"
#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct AdamWRule {
  static constexpr int kNumSlots = AdamRule<C>::kNumSlots;  // momentum, velocity, velocity_hat

  AdamRule<C> adam;
  C lr;
  C weight_decay;
  C decay_factor;  // wd * lr, rounded (used when w has more than one element)
  bool decay;
  bool factor_first;

  KERASOPT_HOST_DEVICE static AdamWRule Make(const SharedInputs& in, double weight_decay,
                                            double beta_1, double beta_2, double epsilon,
                                            bool amsgrad) {
    const double lr = in.learning_rate;
    const long long num_elements = in.num_elements;
    AdamWRule r;
    r.adam = AdamRule<C>::Make(in, beta_1, beta_2, epsilon, amsgrad);
    r.lr = static_cast<C>(lr);
    r.weight_decay = static_cast<C>(weight_decay);
    r.decay_factor = r.weight_decay * r.lr;
    r.decay = weight_decay != 0.0;
    r.factor_first = num_elements > 1;
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w, C& m, C& v, C& v_hat, C g) const {
    if (decay) {
      if (factor_first) {
        w -= w * decay_factor;
      } else {
        w -= (w * weight_decay) * lr;
      }
    }
    adam(w, m, v, v_hat, g);
  }
};

struct AdamW : RuleDeclaration<AdamWRule> {
  // weight_decay: 0 for a variable excluded from weight decay.
  static constexpr Scalars<4> kScalars{"weight_decay", "beta_1", "beta_2", "epsilon"};
  static constexpr Flags<1> kFlags{{{"amsgrad"}}};
  static constexpr Slots<3> kSlots{{{"momentum"}, {"velocity"}, {"velocity_hat", /*amsgrad*/ 0}}};
  static constexpr bool kUsesStep = true;
  static constexpr bool kSparse = true;
  // The decay's rounding depends on the variable's size (see above): the
  // multi-tensor ops set it per variable.
  template <typename C>
  static void ForVariable(long long num_elements, AdamWRule<C>* rule) {
    rule->factor_first = num_elements > 1;
  }
};

}  // namespace kerasopt
