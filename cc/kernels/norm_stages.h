// How the "norms of the inputs, then one dense pass" drivers bind a rule, on
// the CPU (cc/cpu/apply_norms_then_dense.h) and the GPU
// (cc/cuda/input_norms_driver.cuh). Per variable:
//
//   pass 1, per element:  terms of inputs the rule does NOT change (w, g),
//                         their squares summed over the whole variable
//   between the passes:   Stage::Finish turns the sums into a per-variable
//                         value (LARS: the layer's rate; NovoGrad: the new
//                         second moment, kept in the rule's scalar layer
//                         slots) and binds it to the rule
//   pass 2, per element:  the bound rule, over the weight and its other slots
//
// A Stage<Rule> has:
//   kNumNorms, kReadsWeight (pass 1 reads w, else g alone),
//   kNumLayerSlots (the rule's trailing slots of shape (): one value per
//   variable), kNumDenseSlots (the slots pass 2 runs over: the others),
//   NeedsNorms(rule)  false: no pass 1, the sums are 0
//   Terms(rule, w, g, terms)
//   Finish(rule, sums, layer)  layer: the kNumLayerSlots values in the compute
//                              type, updated in place; returns the bound rule
// Host and device code: the drivers load and store the layer values.
#pragma once

#include <array>
#include <utility>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {

// A rule with one per-variable value bound as its last argument, in the shape
// the per-element drivers run: rule(w, slots[0..kSlots)..., g, value). The
// rule is held by value, so a loop over it sees its flags as loop-invariant.
template <typename Rule, typename Value, int kSlots>
struct BoundRule {
  static constexpr int kNumSlots = kSlots;
  Rule rule;
  Value value;
  template <typename... Args>
  KERASOPT_HOST_DEVICE void operator()(Args&&... args) const {
    rule(std::forward<Args>(args)..., value);
  }
};

// LARS-like rules: NeedsNorms(), NormTerms(w, g, terms), Finish(sums) -> scale
// and operator()(w, slots..., g, scale).
template <typename Rule>
struct AfterNormsStage {
  static constexpr int kNumNorms = Rule::kNumNorms;
  static constexpr bool kReadsWeight = true;
  static constexpr int kNumLayerSlots = 0;
  static constexpr int kNumDenseSlots = Rule::kNumSlots;

  KERASOPT_HOST_DEVICE static bool NeedsNorms(const Rule& rule) { return rule.NeedsNorms(); }
  template <typename C>
  KERASOPT_HOST_DEVICE static void Terms(const Rule& rule, C w, C g, C* terms) {
    rule.NormTerms(w, g, terms);
  }
  template <typename C>
  KERASOPT_HOST_DEVICE static auto Finish(const Rule& rule,
                                          const std::array<double, kNumNorms>& sums, C*) {
    auto scale = rule.Finish(sums);  // not const: a BoundRule is assignable
    return BoundRule<Rule, decltype(scale), kNumDenseSlots>{rule, scale};
  }
};

// Rules with layer-wise state (NovoGrad): kNumLayerSlots, Finish(sum of g^2,
// layer values) -> layer and operator()(w, element_slots..., g, layer).
template <typename Rule>
struct LayerwiseStage {
  static constexpr int kNumNorms = 1;  // ||g||
  static constexpr bool kReadsWeight = false;
  static constexpr int kNumLayerSlots = Rule::kNumLayerSlots;
  static constexpr int kNumDenseSlots = Rule::kNumSlots - kNumLayerSlots;
  static_assert(kNumLayerSlots > 0 && kNumDenseSlots >= 0, "Layerwise needs layer slots");

  KERASOPT_HOST_DEVICE static bool NeedsNorms(const Rule&) { return true; }
  template <typename C>
  KERASOPT_HOST_DEVICE static void Terms(const Rule&, C, C g, C* terms) {
    terms[0] = g;
  }
  template <typename C>
  KERASOPT_HOST_DEVICE static auto Finish(const Rule& rule,
                                          const std::array<double, kNumNorms>& sums, C* layer) {
    std::array<C, kNumLayerSlots> values;
    for (int k = 0; k < kNumLayerSlots; ++k) values[k] = layer[k];
    auto bound = rule.Finish(sums[0], values);
    for (int k = 0; k < kNumLayerSlots; ++k) layer[k] = values[k];
    return BoundRule<Rule, decltype(bound), kNumDenseSlots>{rule, bound};
  }
};

// The Stage of a rule declared with Driver::kAfterNorms or kLayerwise.
template <Driver D, typename Rule>
struct NormStageFor;
template <typename Rule>
struct NormStageFor<Driver::kAfterNorms, Rule> {
  using type = AfterNormsStage<Rule>;
};
template <typename Rule>
struct NormStageFor<Driver::kLayerwise, Rule> {
  using type = LayerwiseStage<Rule>;
};

}  // namespace kerasopt
