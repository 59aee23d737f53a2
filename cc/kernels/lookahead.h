// Lookahead's synchronization (Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer:
// k steps forward, 1 step back", NeurIPS 2019, arXiv:1907.08610, Algorithm 1).
//
// Every k inner steps, per element, with slow step size alpha:
//   slow = slow + alpha * (fast - slow)     (the paper's form)
//   fast = slow
// computed as slow = alpha * fast + (1 - alpha) * slow, which is the same
// number in exact arithmetic and exact at alpha = 1 (slow = fast, fast
// unchanged: Lookahead with alpha = 1 is its inner optimizer, to the bit) and
// at alpha = 0 (the fast weights are reset to the slow ones).
//
// The rule takes (first, second) = (slow, fast) and writes both.
#pragma once

#include "cc/kernels/common.h"

namespace kerasopt {

template <typename C>
struct LookaheadSyncRule {
  static constexpr bool kWritesSecond = true;

  C alpha;
  C one_minus_alpha;

  static LookaheadSyncRule Make(double slow_step_size) {
    LookaheadSyncRule r;
    r.alpha = static_cast<C>(slow_step_size);
    r.one_minus_alpha = static_cast<C>(1.0 - slow_step_size);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& slow, C& fast) const {
    slow = alpha * fast + one_minus_alpha * slow;
    fast = slow;
  }
};

}  // namespace kerasopt
