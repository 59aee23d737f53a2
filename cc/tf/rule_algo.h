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
#include "cc/kernels/step_features.h"
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

  // Whether the rule runs element by element: only then can the step's
  // features (cc/kernels/step_features.h) wrap it.
  static constexpr bool kTakesStepFeatures = Decl::kDriver == Driver::kElementwise;
  template <typename C>
  using FeaturedRule = WithStepFeatures<Rule<C>, C>;
  // The applying step of gradient accumulation (the accumulator as one more slot).
  template <typename C>
  using AccumulatingRule = WithStepFeatures<Rule<C>, C, /*kAccumulates=*/true>;

  explicit RuleAlgo(::tensorflow::OpKernelConstruction* ctx) : op_(ctx->def().op()) {
    for (int i = 0; i < kNumFlags; ++i) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr(Decl::kFlags[i].name, &flags_[i]));
    }
    // The dense and multi-tensor ops have it (rule_ops.h), the sparse ones not.
    if (ctx->HasAttr("with_average")) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("with_average", &with_average_));
    }
    OP_REQUIRES(ctx, !with_average_ || kTakesStepFeatures,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", op_, " takes no EMA slot (with_average): its rule is not "
                    "element-wise, so Keras's own EMA pass runs for it")));
    if (ctx->HasAttr("accumulation_steps")) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("accumulation_steps", &accumulation_steps_));
    }
    OP_REQUIRES(ctx, accumulation_steps_ == 0 || kTakesStepFeatures,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", op_, " takes no gradient accumulator (accumulation_steps): "
                    "its rule is not element-wise, so Keras's own accumulation runs for it")));
  }

  const bool* flags() const { return flags_.data(); }

  // The op was given the EMA average as one more slot after the rule's own.
  bool with_average() const { return with_average_; }

  // k > 0: the applying step of gradient accumulation; the accumulator is
  // one more slot after the EMA average (or after the rule's slots).
  int accumulation_steps() const { return accumulation_steps_; }
  bool accumulates() const { return accumulation_steps_ > 0; }

  // The slots after the rule's own (the EMA average, the accumulator).
  int NumFeatureSlots() const { return with_average_ + accumulates(); }

  // The op takes the required slots, and the optional one if the rule has one
  // (and the EMA average after them with with_average).
  absl::Status CheckNumSlots(int num_slots_with_average) const {
    const int num_slots = num_slots_with_average - NumFeatureSlots();
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
        " slots (", absl::StrJoin(names, ", "), ")", FlagsText(),
        with_average_ ? " and the EMA average" : "",
        accumulates() ? " and the gradient accumulator" : "", ", got ", num_slots_with_average));
  }

  // Whether rule slot `slot` (kNumSlots<Decl>: the EMA average; + 1: the
  // gradient accumulator) was passed.
  bool SlotPresent(int slot, int num_slots) const {
    if (slot == kerasopt::kNumSlots<Decl>) return with_average_;
    if (slot > kerasopt::kNumSlots<Decl>) return accumulates();
    return SlotPassed<Decl>(slot, num_slots - NumFeatureSlots(), flags_.data());
  }

  bool OptionalSlotPassed(int num_slots) const {
    return num_slots - NumFeatureSlots() > RequiredSlots<Decl>(flags_.data());
  }

  // The op's learning rate (read and checked by MakeRule), for the features.
  static double LearningRate(::tensorflow::OpKernelContext* ctx) {
    const ::tensorflow::Tensor* lr;
    return ctx->input("learning_rate", &lr).ok() ? lr->scalar<double>()() : 0.0;
  }

  // The op's `features` input (step_features.h): empty (a plain step), or
  // kNumStepFeatures values for every variable, or (multi-tensor ops,
  // `num_vars` > 0) one row of them per variable. `rows` gets the row count
  // (0: empty).
  absl::Status ReadStepFeatures(::tensorflow::OpKernelContext* ctx, int num_vars,
                                const double** values, int* rows) const {
    *values = nullptr;
    *rows = 0;
    const ::tensorflow::Tensor* features;
    if (!ctx->input("features", &features).ok()) return absl::OkStatus();  // (an op without it)
    const auto& shape = features->shape();
    const bool one_row = shape.dims() == 1 && shape.dim_size(0) == kNumStepFeatures;
    const bool per_var = num_vars > 0 && shape.dims() == 2 && shape.dim_size(0) == num_vars &&
                         shape.dim_size(1) == kNumStepFeatures;
    if (features->NumElements() == 0 && shape.dims() == 1) {
      if (with_average_ || accumulates()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kerasopt: ", ctx->op_kernel().type_string(), ": ",
            with_average_ ? "with_average needs the step's features (the EMA momentum)"
                          : "accumulation_steps needs the step's features",
            ", got none"));
      }
      return absl::OkStatus();
    }
    if (!one_row && !per_var) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: ", ctx->op_kernel().type_string(), ": `features` must have shape [0] or [",
          kNumStepFeatures, "]", num_vars > 0 ? absl::StrCat(" or [", num_vars, ", ",
                                                              kNumStepFeatures, "]") : "",
          ", got ", shape.DebugString()));
    }
    if (!kTakesStepFeatures) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: ", ctx->op_kernel().type_string(),
          " takes no step features (clipping, weight decay, EMA): its rule is not "
          "element-wise, so Keras's own passes run for it"));
    }
    *values = features->flat<double>().data();
    *rows = one_row ? 1 : num_vars;
    return absl::OkStatus();
  }

  // Whether the op's `features` say this step writes nothing (kSkipStep;
  // rows as ReadStepFeatures reads them, every one alike). Checked before the
  // op locks anything.
  absl::Status SkipsStep(::tensorflow::OpKernelContext* ctx, int num_vars, bool* skip) const {
    const double* values;
    int rows;
    *skip = false;
    TF_RETURN_IF_ERROR(ReadStepFeatures(ctx, num_vars, &values, &rows));
    if (rows == 0) return absl::OkStatus();
    *skip = values[kSkipStep] != 0.0;
    for (int i = 1; i < rows; ++i) {
      if ((values[i * kNumStepFeatures + kSkipStep] != 0.0) != *skip) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kerasopt: ", ctx->op_kernel().type_string(), ": every row of `features` must "
            "agree on skip_step (column ", int{kSkipStep}, "): row 0 has ", values[kSkipStep],
            ", row ", i, " has ", values[i * kNumStepFeatures + kSkipStep]));
      }
    }
    return absl::OkStatus();
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
  bool with_average_ = false;
  int accumulation_steps_ = 0;
};

}  // namespace tf
}  // namespace kerasopt
