// Keras's decoupled weight decay, w -= w * wd * lr, for the rules that fold
// it into their own update (ScheduleFree, Muon) instead of Keras's separate
// pass over every variable before the step (the update that follows reads the
// decayed w, as in Keras).
//
// Rounding follows Keras as TensorFlow runs it in a graph (tf.function,
// model.fit): Grappler's arithmetic optimizer regroups w * wd * lr as
// w * (wd * lr) whenever w has more than one element, so the scalar product
// is rounded first; one-element variables keep (w * wd) * lr (see adamw.h).
// wd == 0 (no decay, or a variable excluded from it) leaves w as it is.
#pragma once

#include "cc/kernels/common.h"

namespace kerasopt {

template <typename C>
struct DecoupledDecay {
  C lr;
  C weight_decay;
  C factor;  // wd * lr, rounded (used when w has more than one element)
  bool active;
  bool factor_first;

  KERASOPT_HOST_DEVICE static DecoupledDecay Make(double lr, double weight_decay,
                                                  long long num_elements) {
    DecoupledDecay d;
    d.lr = static_cast<C>(lr);
    d.weight_decay = static_cast<C>(weight_decay);
    d.factor = d.weight_decay * d.lr;
    d.active = weight_decay != 0.0;
    d.factor_first = num_elements > 1;
    return d;
  }

  KERASOPT_HOST_DEVICE void operator()(C& w) const {
    if (active) w -= factor_first ? w * factor : (w * weight_decay) * lr;
  }
};

}  // namespace kerasopt
