// One step of a running (arithmetic) mean of iterates: Polyak-Ruppert
// averaging (Polyak & Juditsky 1992; Ruppert 1988) and stochastic weight
// averaging (Izmailov et al., "Averaging Weights Leads to Wider Optima and
// Better Generalization", UAI 2018, Algorithm 1).
//
// With n iterates already in the average (count = n):
//   n == 0:  average = w                      (exactly: the mean of one iterate)
//   n >= 1:  average = average + (w - average) / (n + 1)
//
// The rule takes (first, second) = (average, w) and writes only the average.
#pragma once

#include "cc/kernels/common.h"

namespace kerasopt {

template <typename C>
struct IterateAverageRule {
  static constexpr bool kWritesSecond = false;

  bool first;       // n == 0
  C count_plus_one;  // n + 1

  static IterateAverageRule Make(long long count) {
    IterateAverageRule r;
    r.first = count == 0;
    r.count_plus_one = static_cast<C>(static_cast<double>(count) + 1.0);
    return r;
  }

  KERASOPT_HOST_DEVICE void operator()(C& average, C& w) const {
    average = first ? w : average + (w - average) / count_plus_one;
  }
};

}  // namespace kerasopt
