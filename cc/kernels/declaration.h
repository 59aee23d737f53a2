// How an update rule is declared: one struct next to the rule's math in
// cc/kernels/<rule>.h, from which generic code builds everything around it:
// the TensorFlow ops (cc/tf/rule_ops.h), the CUDA launchers
// (cc/cuda/rule_launchers.cu.cc.in) and the NumPy binding
// (cc/python/bind_rule.h). cc/rules.bzl lists the declared rules; the
// struct's name is the rule's name (ops KerasoptApply<Name>, ...).
//
//   struct MyRule : RuleDeclaration<MyRuleRule> {       // the functor
//     static constexpr Scalars<3> kScalars{"beta_1", "beta_2", "epsilon"};
//     static constexpr Slots<2> kSlots{{{"momentum"}, {"velocity"}}};
//   };
//
// The ops take the variable, its slots and its gradient, then the inputs every
// rule shares (learning_rate and step: SharedInputs), then the rule's kScalars
// (float64 tensors, new values every step) and its kFlags (bool attrs, fixed
// for an op). The functor is built by
//   Rule<C>::Make(const SharedInputs&, <kScalars in order>..., <kFlags in order>...)
// so Make's parameters name the values the declaration lists. Optional parts
// (defaults in RuleDeclaration):
//   kFlags; kScalarDefaults: defaults of some kScalars for the NumPy binding
//     (an option added to a rule keeps the binding's old calls valid; the ops
//     take every scalar, from the optimizer class);
//   kUsesStep: reads `step` (checked >= 1); kDriver: how the rule runs
//   over a variable; kSparse: has a KerasoptSparseApply op (per-element rules);
//   Check(optional_slot_passed, <kScalars>..., <kFlags>...): the value checks,
//     nullptr or what is wrong, written once: the CPU ops and the binding
//     check on the host, the GPU drivers on the device (and then write nothing);
//   ForVariable(num_elements, Rule<C>*): for a rule that depends on the
//     variable (the multi-tensor ops call it per variable).
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

#include "cc/kernels/common.h"

namespace kerasopt {

// How a rule runs over a variable; each side maps it to its drivers
// (cc/cpu/driver_for.h, cc/cuda/dense_driver.cuh).
enum class Driver {
  kElementwise,  // one pass over the elements (and sparse rows, multi-tensor chunks)
  kWithNorms,    // LAMB: a pass that updates and sums norms, then one with the per-variable value
  kAfterNorms,   // LARS: norms of inputs the rule does not change, then one element-wise pass
  kLayerwise,    // NovoGrad: ||g|| and per-variable (shape ()) slots, then one element-wise pass
  // FullMatrixAdagrad, Shampoo: block statistics and preconditioners, their own
  // OpKernel (cc/tf/preconditioned_apply_op.h); CPU only, no NumPy binding.
  kPreconditioned,
};

// A slot of the rule, in the order of its operator(). It is passed always,
// only when a flag is set, or optionally: then the rule's values say whether
// it is needed (SGD's momentum slot; Check ties them).
struct Slot {
  static constexpr int kAlways = -1;
  static constexpr int kOptional = -2;
  const char* name;
  int when = kAlways;  // kAlways, kOptional, or the index in kFlags of the flag that adds it
};

// A bool attr of the rule's ops (fixed for an op's life, e.g. amsgrad).
struct Flag {
  const char* name;
  bool default_value = false;
};

// A default value of a scalar input, for the NumPy binding's keyword.
struct ScalarDefault {
  const char* name;
  double value;
};

template <std::size_t N>
using Scalars = std::array<const char*, N>;
template <std::size_t N>
using ScalarDefaults = std::array<ScalarDefault, N>;
template <std::size_t N>
using Slots = std::array<Slot, N>;
template <std::size_t N>
using Flags = std::array<Flag, N>;

// The inputs every rule's ops take, whatever the rule.
struct SharedInputs {
  double learning_rate;
  long long step;          // optimizer.iterations + 1 (>= 1 where the rule reads it)
  long long num_elements;  // of the variable (AdamW's rounding depends on it)
};

// The defaults a declaration starts from.
template <template <typename> class R>
struct RuleDeclaration {
  template <typename C>
  using Rule = R<C>;
  static constexpr Flags<0> kFlags{};
  static constexpr ScalarDefaults<0> kScalarDefaults{};
  static constexpr bool kUsesStep = false;
  static constexpr Driver kDriver = Driver::kElementwise;
  static constexpr bool kSparse = false;
  // No value checks (a declaration's own Check hides this one).
  template <typename... Values>
  KERASOPT_HOST_DEVICE static const char* Check(bool, Values...) {
    return nullptr;
  }
};

template <typename Array>
constexpr int kCountOf = static_cast<int>(std::tuple_size<Array>::value);
template <typename Decl>
constexpr int kNumScalars = kCountOf<decltype(Decl::kScalars)>;
template <typename Decl>
constexpr int kNumFlags = kCountOf<decltype(Decl::kFlags)>;
template <typename Decl>
constexpr int kNumSlots = kCountOf<decltype(Decl::kSlots)>;

constexpr bool SameName(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

// The index in Decl::kScalarDefaults of the scalar `name`, or -1.
template <typename Decl>
constexpr int ScalarDefaultIndex(const char* name) {
  for (int k = 0; k < kCountOf<decltype(Decl::kScalarDefaults)>; ++k) {
    if (SameName(Decl::kScalarDefaults[k].name, name)) return k;
  }
  return -1;
}

// The slots that must be passed with these flags (the optional one aside).
template <typename Decl>
KERASOPT_HOST_DEVICE int RequiredSlots(const bool* flags) {
  int n = 0;
  for (int k = 0; k < kNumSlots<Decl>; ++k) {
    const int when = Decl::kSlots[k].when;
    n += when == Slot::kAlways || (when >= 0 && flags[when]);
  }
  return n;
}

template <typename Decl>
KERASOPT_HOST_DEVICE constexpr bool HasOptionalSlot() {
  for (int k = 0; k < kNumSlots<Decl>; ++k) {
    if (Decl::kSlots[k].when == Slot::kOptional) return true;
  }
  return false;
}

// Whether rule slot k is among the `num_slots` passed (in rule order).
template <typename Decl>
KERASOPT_HOST_DEVICE bool SlotPassed(int k, int num_slots, const bool* flags) {
  const int when = Decl::kSlots[k].when;
  if (when == Slot::kAlways) return true;
  if (when == Slot::kOptional) return num_slots > RequiredSlots<Decl>(flags);
  return flags[when];
}

namespace internal {
template <typename Decl, typename C, std::size_t... I, std::size_t... J>
KERASOPT_HOST_DEVICE typename Decl::template Rule<C> MakeRule(const SharedInputs& in,
                                                              const double* s, const bool* f,
                                                              std::index_sequence<I...>,
                                                              std::index_sequence<J...>) {
  return Decl::template Rule<C>::Make(in, s[I]..., f[J]...);
}
template <typename Decl, std::size_t... I, std::size_t... J>
KERASOPT_HOST_DEVICE const char* Check(bool optional_slot, const double* s, const bool* f,
                                       std::index_sequence<I...>, std::index_sequence<J...>) {
  return Decl::Check(optional_slot, s[I]..., f[J]...);
}
}  // namespace internal

// Rule<C>::Make(in, scalars[0], ..., flags[0], ...).
template <typename Decl, typename C>
KERASOPT_HOST_DEVICE typename Decl::template Rule<C> MakeRule(const SharedInputs& in,
                                                              const double* scalars,
                                                              const bool* flags) {
  return internal::MakeRule<Decl, C>(in, scalars, flags,
                                     std::make_index_sequence<kNumScalars<Decl>>{},
                                     std::make_index_sequence<kNumFlags<Decl>>{});
}

// The declaration's value checks: nullptr, or what is wrong.
template <typename Decl>
KERASOPT_HOST_DEVICE const char* CheckValues(bool optional_slot, const double* scalars,
                                             const bool* flags) {
  return internal::Check<Decl>(optional_slot, scalars, flags,
                               std::make_index_sequence<kNumScalars<Decl>>{},
                               std::make_index_sequence<kNumFlags<Decl>>{});
}

}  // namespace kerasopt
