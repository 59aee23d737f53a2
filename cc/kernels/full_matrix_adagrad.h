// Full-matrix AdaGrad (Duchi, Hazan & Singer, "Adaptive Subgradient Methods
// for Online Learning and Stochastic Optimization", JMLR 2011), blocked:
// the flattened variable is cut into blocks of b coordinates, each with its
// own b x b statistics and preconditioner (cc/kernels/block_preconditioner.h):
//   S_k += g_k g_k^T;   P_k = (S_k + eps I)^(-1/2) every update_frequency steps
//   w_k -= lr * P_k g_k
// The declaration below builds its op; the work is the preconditioned driver's
// (cc/tf/preconditioned_apply_op.h). This header only says what one step
// computes from the op's inputs (no Eigen here: it is shared with nvcc, which
// compiles nothing for this rule).
#pragma once

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

template <typename C>
struct FullMatrixAdagradRule {
  static constexpr int kNumSlots = 2;  // statistics, preconditioner: [num_blocks, b, b]
  static constexpr int kSides = 1;     // statistics of the rows only (the column view)
  static constexpr int kRoot = 2;      // P = (S + eps I)^(-1/2)

  double learning_rate;
  double epsilon;
  bool recompute;  // recompute the preconditioners before the step
  bool precondition = true;

  KERASOPT_HOST_DEVICE static FullMatrixAdagradRule Make(const SharedInputs& in, double epsilon,
                                                         double update_frequency) {
    FullMatrixAdagradRule r;
    r.learning_rate = in.learning_rate;
    r.epsilon = epsilon;
    r.recompute = (in.step - 1) % static_cast<long long>(update_frequency) == 0;
    return r;
  }
};

struct FullMatrixAdagrad : RuleDeclaration<FullMatrixAdagradRule> {
  static constexpr Scalars<2> kScalars{"epsilon", "update_frequency"};
  static constexpr Slots<2> kSlots{{{"statistics"}, {"preconditioner"}}};
  static constexpr bool kUsesStep = true;
  static constexpr Driver kDriver = Driver::kPreconditioned;
  KERASOPT_HOST_DEVICE static const char* Check(bool, double epsilon, double update_frequency) {
    if (!(epsilon > 0.0)) return "epsilon must be > 0 (it keeps the inverse roots finite)";
    if (!(update_frequency >= 1.0)) return "update_frequency must be >= 1";
    return nullptr;
  }
};

}  // namespace kerasopt
