// Shampoo (Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
// Optimization", ICML 2018, Algorithm 1), blocked, with learning-rate grafting
// (Agarwal et al., "Disentangling Adaptive Gradient Methods from Learning
// Rates", 2020): a rank >= 2 variable viewed as a [prod(shape[:-1]),
// shape[-1]] matrix G is cut into tiles, each with left and right statistics
// and their inverse fourth roots (cc/kernels/block_preconditioner.h):
//   L_k += G_k G_k^T;  R_k += G_k^T G_k;  D_k = L_k^(-1/4) G_k R_k^(-1/4)
// the roots recomputed every precondition_frequency steps from
// start_preconditioning_step on. The step keeps the grafted step's norm
// (Adam's, lr factored out, or the gradient's for SGD grafting) and takes
// Shampoo's direction: w -= lr * (|A| / |D|) * D; before preconditioning
// starts, the grafted step alone.
// The declaration below builds its op; the work is the preconditioned driver's
// (cc/tf/preconditioned_apply_op.h). This header only says what one step
// computes from the op's inputs (no Eigen here: it is shared with nvcc, which
// compiles nothing for this rule).
#pragma once

#include "cc/kernels/adam.h"
#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct ShampooRule {
  // left_statistics, right_statistics, left_preconditioner, right_preconditioner
  // ([num_blocks, b, b]), then the grafted Adam's momentum and velocity.
  static constexpr int kNumSlots = 6;
  static constexpr int kSides = 2;  // left and right statistics
  static constexpr int kRoot = 4;   // (L + eps I)^(-1/4), (R + eps I)^(-1/4)

  double learning_rate;
  double epsilon;
  bool recompute;     // recompute the preconditioners before the step
  bool precondition;  // false: the grafted step alone
  bool adam_grafting, sgd_grafting;
  AdamRule<C> adam;  // the grafted Adam, lr factored out

  KERASOPT_HOST_DEVICE static ShampooRule Make(const SharedInputs& in, double epsilon,
                                               double beta_1, double beta_2,
                                               double graft_epsilon,
                                               double precondition_frequency,
                                               double start_preconditioning_step,
                                               bool adam_grafting, bool sgd_grafting) {
    ShampooRule r;
    r.learning_rate = in.learning_rate;
    r.epsilon = epsilon;
    const long long start = static_cast<long long>(start_preconditioning_step);
    r.precondition = in.step >= start;
    r.recompute = r.precondition &&
                  (in.step - start) % static_cast<long long>(precondition_frequency) == 0;
    r.adam_grafting = adam_grafting;
    r.sgd_grafting = sgd_grafting;
    r.adam = AdamRule<C>::Make(SharedInputs{1.0, in.step, in.num_elements}, beta_1, beta_2,
                               graft_epsilon, /*amsgrad=*/false);
    return r;
  }
};

struct Shampoo : RuleDeclaration<ShampooRule> {
  static constexpr Scalars<6> kScalars{"epsilon",       "beta_1",
                                       "beta_2",        "graft_epsilon",
                                       "precondition_frequency", "start_preconditioning_step"};
  // Neither flag: no grafting (the preconditioned step as it is).
  static constexpr Flags<2> kFlags{{{"adam_grafting"}, {"sgd_grafting"}}};
  static constexpr Slots<6> kSlots{{{"left_statistics"},
                                    {"right_statistics"},
                                    {"left_preconditioner"},
                                    {"right_preconditioner"},
                                    {"momentum", /*adam_grafting*/ 0},
                                    {"velocity", /*adam_grafting*/ 0}}};
  static constexpr bool kUsesStep = true;
  static constexpr Driver kDriver = Driver::kPreconditioned;
  KERASOPT_HOST_DEVICE static const char* Check(bool, double epsilon, double, double, double,
                                                double precondition_frequency,
                                                double start_preconditioning_step,
                                                bool adam_grafting, bool sgd_grafting) {
    if (!(epsilon > 0.0)) return "epsilon must be > 0 (it keeps the inverse roots finite)";
    if (!(precondition_frequency >= 1.0) || !(start_preconditioning_step >= 1.0)) {
      return "precondition_frequency and start_preconditioning_step must be >= 1";
    }
    if (adam_grafting && sgd_grafting) return "graft Adam or SGD, not both";
    return nullptr;
  }
};

}  // namespace kerasopt
