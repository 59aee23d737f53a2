// How each GPU op builds its rule (cc/kernels/<algo>.h) from the op's inputs.
//
// A spec names the op's float64 scalar inputs and bool attrs in the order its
// Make() reads them, and builds the rule from their values. The TensorFlow op
// (cc/tf/dense_apply_gpu_op.h) uses the names to find the device pointers of
// the inputs; the CUDA driver (cc/cuda/dense_driver.cuh) calls Make() on the
// device once per thread block, so the values never travel to the host.
//
//   template <typename C> using Rule = ...;           // from cc/kernels/
//   kWithNorms                                         // two-pass driver (LAMB)
//   kInputNorms, template <typename R> using Stage    // norms of the inputs, then
//                                                      // dense (LARS, NovoGrad)
//   kScalars, kFlags                                   // op input / attr names
//   kUsesStep                                          // reads the `step` input
//   Make<C>(s, step, flags, n)                         // the rule (host & device)
//   Accepts(s, flags, num_slots)                       // values the op accepts
//
// Accepts() stands in for the value checks the CPU ops make on the host (e.g.
// SGD's momentum needs its slot): a GPU op cannot read a device value without
// a sync, so the driver checks on the device and, when a check fails, writes
// nothing (the Keras optimizers never pass such values). step >= 1 is checked
// the same way for specs with kUsesStep.
#pragma once

#include <array>
#include <cstdint>

#include "cc/kernels/adabelief.h"
#include "cc/kernels/adadelta.h"
#include "cc/kernels/adagrad.h"
#include "cc/kernels/adam.h"
#include "cc/kernels/adamax.h"
#include "cc/kernels/adamw.h"
#include "cc/kernels/common.h"
#include "cc/kernels/ftrl.h"
#include "cc/kernels/lamb.h"
#include "cc/kernels/lars.h"
#include "cc/kernels/lion.h"
#include "cc/kernels/nadam.h"
#include "cc/kernels/norm_stages.h"
#include "cc/kernels/novograd.h"
#include "cc/kernels/radam.h"
#include "cc/kernels/rmsprop.h"
#include "cc/kernels/sgd.h"
#include "cc/kernels/yogi.h"

namespace kerasopt {
namespace cuda {

template <std::size_t N>
using Names = std::array<const char*, N>;

// Defaults for the optional parts of a spec.
struct SpecBase {
  static constexpr bool kWithNorms = false;
  static constexpr bool kInputNorms = false;
  static constexpr bool kUsesStep = false;
  static constexpr Names<0> kFlags{};
  KERASOPT_HOST_DEVICE static bool Accepts(const double*, const bool*, int) { return true; }
};

struct AdaBeliefSpec : SpecBase {
  template <typename C>
  using Rule = AdaBeliefRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  static constexpr Names<1> kFlags{"amsgrad"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool* f,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], step, f[0]);
  }
};

struct AdadeltaSpec : SpecBase {
  template <typename C>
  using Rule = AdadeltaRule<C>;
  static constexpr Names<3> kScalars{"lr", "rho", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool*, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2]);
  }
};

struct AdagradSpec : SpecBase {
  template <typename C>
  using Rule = AdagradRule<C>;
  static constexpr Names<2> kScalars{"lr", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool*, int64_t) {
    return Rule<C>::Make(s[0], s[1]);
  }
};

struct AdamSpec : SpecBase {
  template <typename C>
  using Rule = AdamRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  static constexpr Names<1> kFlags{"amsgrad"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool* f,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], step, f[0]);
  }
};

struct AdamaxSpec : SpecBase {
  template <typename C>
  using Rule = AdamaxRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool*,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], step);
  }
};

struct AdamwSpec : SpecBase {
  template <typename C>
  using Rule = AdamwRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<5> kScalars{"lr", "weight_decay", "beta_1", "beta_2", "epsilon"};
  static constexpr Names<1> kFlags{"amsgrad"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool* f,
                                           int64_t n) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], s[4], step, f[0], n);
  }
};

struct FtrlSpec : SpecBase {
  template <typename C>
  using Rule = FtrlRule<C>;
  static constexpr Names<6> kScalars{"lr", "learning_rate_power", "l1", "l2", "l2_shrinkage",
                                     "beta"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool*, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], s[4], s[5]);
  }
};

struct LambSpec : SpecBase {
  template <typename C>
  using Rule = LambRule<C>;
  static constexpr bool kWithNorms = true;
  static constexpr bool kUsesStep = true;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool*,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], step);
  }
};

struct LarsSpec : SpecBase {
  template <typename C>
  using Rule = LarsRule<C>;
  template <typename R>
  using Stage = AfterNormsStage<R>;
  static constexpr bool kInputNorms = true;
  static constexpr Names<4> kScalars{"lr", "momentum", "weight_decay", "eta"};
  static constexpr Names<2> kFlags{"nesterov", "layer_adaptation"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool* f, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], f[0], f[1]);
  }
  // momentum != 0 needs the momentum slot (as on the CPU).
  KERASOPT_HOST_DEVICE static bool Accepts(const double* s, const bool*, int num_slots) {
    return s[1] == 0.0 || num_slots > 0;
  }
};

struct LionSpec : SpecBase {
  template <typename C>
  using Rule = LionRule<C>;
  static constexpr Names<3> kScalars{"lr", "beta_1", "beta_2"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool*, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2]);
  }
};

struct NadamSpec : SpecBase {
  template <typename C>
  using Rule = NadamRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<5> kScalars{"lr", "beta_1", "beta_2", "epsilon", "u_product"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool*,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], s[4], step);
  }
};

struct NovoGradSpec : SpecBase {
  template <typename C>
  using Rule = NovoGradRule<C>;
  template <typename R>
  using Stage = LayerwiseStage<R>;
  static constexpr bool kInputNorms = true;
  static constexpr bool kUsesStep = true;
  static constexpr Names<5> kScalars{"lr", "beta_1", "beta_2", "epsilon", "weight_decay"};
  static constexpr Names<1> kFlags{"grad_averaging"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool* f,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], s[4], step, f[0]);
  }
};

struct RAdamSpec : SpecBase {
  template <typename C>
  using Rule = RAdamRule<C>;
  static constexpr bool kUsesStep = true;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long step, const bool*,
                                           int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], step);
  }
};

struct RmspropSpec : SpecBase {
  template <typename C>
  using Rule = RmspropRule<C>;
  static constexpr Names<4> kScalars{"lr", "rho", "momentum", "epsilon"};
  static constexpr Names<1> kFlags{"centered"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool* f, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3], f[0]);
  }
  // momentum > 0 exactly when the momentum slot was passed (as on the CPU).
  KERASOPT_HOST_DEVICE static bool Accepts(const double* s, const bool* f, int num_slots) {
    const bool has_momentum_slot = num_slots == (f[0] ? 3 : 2);
    return (s[2] > 0.0) == has_momentum_slot;
  }
};

struct SgdSpec : SpecBase {
  template <typename C>
  using Rule = SgdRule<C>;
  static constexpr Names<2> kScalars{"lr", "momentum"};
  static constexpr Names<1> kFlags{"nesterov"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool* f, int64_t) {
    return Rule<C>::Make(s[0], s[1], f[0]);
  }
  // momentum != 0 needs the momentum slot (as on the CPU).
  KERASOPT_HOST_DEVICE static bool Accepts(const double* s, const bool*, int num_slots) {
    return s[1] == 0.0 || num_slots > 0;
  }
};

struct YogiSpec : SpecBase {
  template <typename C>
  using Rule = YogiRule<C>;
  static constexpr Names<4> kScalars{"lr", "beta_1", "beta_2", "epsilon"};
  template <typename C>
  KERASOPT_HOST_DEVICE static Rule<C> Make(const double* s, long long, const bool*, int64_t) {
    return Rule<C>::Make(s[0], s[1], s[2], s[3]);
  }
};

}  // namespace cuda
}  // namespace kerasopt
