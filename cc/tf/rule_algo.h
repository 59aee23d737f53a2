// RuleAlgo<Decl>: what the apply OpKernels (dense_apply_op.h, sparse_apply_op.h,
// multi_apply_op.h and their GPU twins) need to know about a declared rule
// (cc/kernels/declaration.h), all read from its declaration: its flags (the
// op's bool attrs), how many slots the op takes and which rule slot each
// passed one fills, and how its rule is built from the op's inputs, value
// checks included.
#pragma once

#include <array>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cc/kernels/declaration.h"
#include "cc/tf/dense_apply_op.h"

namespace kerasopt {
namespace tf {

// A declared rule with a ForVariable hook: its rule depends on the variable.
template <typename Decl, typename = void>
struct HasForVariable : std::false_type {};
template <typename Decl>
struct HasForVariable<Decl, std::void_t<decltype(Decl::ForVariable(
                                0LL, static_cast<typename Decl::template Rule<float>*>(nullptr)))>>
    : std::true_type {};

template <typename Decl>
class RuleAlgo {
 public:
  template <typename C>
  using Rule = typename Decl::template Rule<C>;
  static constexpr int kNumFlags = kerasopt::kNumFlags<Decl>;
  static constexpr int kNumScalars = kerasopt::kNumScalars<Decl>;
  // The multi-tensor op calls ForVariable on a copy of the rule per variable.
  static constexpr bool kPerVariableRule = HasForVariable<Decl>::value;
  static_assert(kerasopt::kNumSlots<Decl> == Rule<float>::kNumSlots,
                "the declaration lists every slot of the rule");

  explicit RuleAlgo(::tensorflow::OpKernelConstruction* ctx) : op_(ctx->def().op()) {
    for (int i = 0; i < kNumFlags; ++i) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr(Decl::kFlags[i].name, &flags_[i]));
    }
  }

  const bool* flags() const { return flags_.data(); }

  // The op takes the required slots, and the optional one if the rule has one.
  absl::Status CheckNumSlots(int num_slots) const {
    const int required = RequiredSlots<Decl>(flags_.data());
    const bool optional = HasOptionalSlot<Decl>();
    if (num_slots == required || (optional && num_slots == required + 1)) {
      return absl::OkStatus();
    }
    std::vector<std::string> names;
    for (int k = 0; k < kerasopt::kNumSlots<Decl>; ++k) {
      const Slot& slot = Decl::kSlots[k];
      if (slot.when == Slot::kOptional) {
        names.push_back(absl::StrCat("[", slot.name, "]"));
      } else if (slot.when == Slot::kAlways || flags_[slot.when]) {
        names.push_back(slot.name);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: ", op_, " takes ", required, optional ? absl::StrCat(" or ", required + 1) : "",
        " slots (", absl::StrJoin(names, ", "), ")", FlagsText(), ", got ", num_slots));
  }

  bool SlotPresent(int slot, int num_slots) const {
    return SlotPassed<Decl>(slot, num_slots, flags_.data());
  }

  bool OptionalSlotPassed(int num_slots) const {
    return num_slots > RequiredSlots<Decl>(flags_.data());
  }

  // The rule from the op's inputs (learning_rate, step, the declared scalars),
  // after the declaration's value checks.
  template <typename C>
  absl::Status MakeRule(::tensorflow::OpKernelContext* ctx, int num_slots, Rule<C>* rule) const {
    SharedInputs shared{};
    TF_RETURN_IF_ERROR(ReadScalar(ctx, "learning_rate", &shared.learning_rate));
    int64_t step;
    if (Decl::kUsesStep) {
      TF_RETURN_IF_ERROR(ReadStep(ctx, &step));
      shared.step = step;
    } else {
      // Every op takes the step; a rule that ignores it still refuses a non-scalar.
      TF_RETURN_IF_ERROR(ReadScalar(ctx, "step", &step));
    }
    std::array<double, (kNumScalars > 0 ? kNumScalars : 1)> scalars{};
    for (int i = 0; i < kNumScalars; ++i) {
      TF_RETURN_IF_ERROR(ReadScalar(ctx, Decl::kScalars[i], &scalars[i]));
    }
    // The multi-tensor op has no single "grad": ForVariable sets each size.
    shared.num_elements = 2;
    const ::tensorflow::Tensor* grad;
    if (ctx->input("grad", &grad).ok()) shared.num_elements = grad->NumElements();
    if (const char* wrong =
            CheckValues<Decl>(OptionalSlotPassed(num_slots), scalars.data(), flags_.data())) {
      return absl::InvalidArgumentError(
          absl::StrCat("kerasopt: ", ctx->op_kernel().type_string(), ": ", wrong));
    }
    *rule = kerasopt::MakeRule<Decl, C>(shared, scalars.data(), flags_.data());
    return absl::OkStatus();
  }

  template <typename C>
  void ForVariable(int64_t num_elements, Rule<C>* rule) const {
    if constexpr (kPerVariableRule) Decl::ForVariable(num_elements, rule);
  }

 private:
  // " with amsgrad=true", naming the flags that decide which slots are passed.
  std::string FlagsText() const {
    std::string text;
    std::array<bool, (kNumFlags > 0 ? kNumFlags : 1)> named{};
    for (int k = 0; k < kerasopt::kNumSlots<Decl>; ++k) {
      const int when = Decl::kSlots[k].when;
      if (when >= 0 && !named[when]) {
        named[when] = true;
        absl::StrAppend(&text, text.empty() ? " with " : ", ", Decl::kFlags[when].name, "=",
                        flags_[when] ? "true" : "false");
      }
    }
    return text;
  }

  std::string op_;
  std::array<bool, (kNumFlags > 0 ? kNumFlags : 1)> flags_{};
};

}  // namespace tf
}  // namespace kerasopt
