// The OpKernel shared by every multi-tensor "apply" op (KerasoptMultiApply<Algo>):
// one launch updates a list of N variables of one dtype, their slots and their
// gradients with one algorithm and one set of hyperparameters.
//
// Inputs: vars (N resources), slots (ONE 1-D resource tensor of N * num_slots
// handles, variable-major: the slots of vars[i] are slots[i*num_slots ..
// (i+1)*num_slots)), grads (N tensors of dtype T), then the same scalar inputs
// and attrs as the rule's KerasoptApply<Algo> op, so the same RuleAlgo
// (rule_algo.h) reads them. A rule whose Algo has kPerVariableRule (AdamW) gets
// ForVariable called on a copy of its rule per variable.
//
// Why the slots come packed: every separate input of a tf.function step costs
// the caller a few microseconds (Python hashing of the captures, one executor
// argument each), and slots are touched by nothing but the optimizer. Packed
// once (kerasopt/optimizers/multi_tensor.py), Adam's 2000 slots of a
// 1000-variable model become one captured tensor. The variables stay separate
// inputs, so tf.function's automatic control dependencies still order the
// update after every read of them. The resources are looked up and locked by
// LockedResourceList (locked_resource_list.h). The work is
// then shared out by the multi-tensor driver (cc/cpu/apply_multi.h), which
// gives the same bits as one KerasoptApply<Algo> per variable.
#pragma once

#include <type_traits>
#include <utility>

#include "cc/cpu/apply_multi.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/locked_resource_list.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo, typename Driver = cpu::Dense>
class MultiApplyOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;
  using MultiDriver = typename cpu::MultiDriverFor<Driver>::type;
  static constexpr int kNumSlots = Rule::kNumSlots;

  explicit MultiApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &num_vars_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES(ctx, num_slots_ <= kNumSlots + algo_.NumFeatureSlots(),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: at most ", kNumSlots + algo_.NumFeatureSlots(), " slots, got ",
                    num_slots_)));
    OP_REQUIRES_OK(ctx, algo_.CheckNumSlots(num_slots_));
    OP_REQUIRES_OK(ctx, CheckAccumulationDtype<T>(algo_, type_string()));
  }

  void Compute(OpKernelContext* ctx) override {
    bool skip;
    OP_REQUIRES_OK(ctx, algo_.SkipsStep(ctx, num_vars_, &skip));
    if (skip) return;  // (step_features.h: kSkipStep)
    LockedResourceList resources;
    OP_REQUIRES_OK(ctx, resources.Acquire(ctx, num_vars_, num_slots_));
    const int num_resources = resources.size();

    // The variables hold T; their slots T, or all float32 for a 16-bit T.
    for (int r = 0; r < num_resources; ++r) {
      ::tensorflow::Var* v = resources.var(r);
      OP_REQUIRES(ctx, v->tensor()->IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "kerasopt: variable '", resources.name(r), "' is not initialized")));
      if (r >= num_vars_) continue;
      OP_REQUIRES(ctx, v->tensor()->dtype() == ::tensorflow::DataTypeToEnum<T>::value,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", resources.name(r), "' has dtype ",
                      ::tensorflow::DataTypeString(v->tensor()->dtype()),
                      " but the update was given dtype ",
                      ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value))));
    }
    const bool wide =
        num_slots_ > 0 && UsesWideSlots<T>(resources.var(num_vars_)->tensor()->dtype());
    for (int r = num_vars_; r < num_resources; ++r) {
      OP_REQUIRES_OK(ctx, CheckSlotDtype<T>(resources.var(r)->tensor()->dtype(), wide,
                                            TakesWideSlots<MultiDriver>::value, type_string(),
                                            resources.name((r - num_vars_) / num_slots_),
                                            resources.name(r)));
    }
    WithSlotStorage<T, MultiDriver>(wide, [&](auto slot_type) {
      this->template Run<decltype(slot_type)>(ctx, resources);
    });
  }

 private:
  // The update with slots stored as S (dtypes checked, variables locked).
  template <typename S>
  void Run(OpKernelContext* ctx, const LockedResourceList& resources) {
    auto name = [&](int r) -> const std::string& { return resources.name(r); };
    const int num_resources = resources.size();
    std::vector<Tensor> tensors(num_resources);
    for (int r = 0; r < num_resources; ++r) {
      ::tensorflow::Var* v = resources.var(r);
      OP_REQUIRES_OK(ctx, r < num_vars_
                              ? ::tensorflow::PrepareToUpdateVariable<CPUDevice, T>(
                                    ctx, v->tensor(), v->copy_on_read_mode.load())
                              : ::tensorflow::PrepareToUpdateVariable<CPUDevice, S>(
                                    ctx, v->tensor(), v->copy_on_read_mode.load()));
      tensors[r] = *v->tensor();
    }

    const int first_grad = num_vars_ + 1;
    const int first_slot = num_vars_;
    // Each variable's rule slots, then (with_average) its EMA average, then
    // (the applying step of gradient accumulation) its accumulator.
    using Featured = WithStepFeatures<Rule, C>;
    using Accumulating = WithStepFeatures<Rule, C, /*kAccumulates=*/true>;
    std::vector<cpu::TensorRef<Accumulating, T, S>> refs(num_vars_);
    for (int i = 0; i < num_vars_; ++i) {
      const Tensor& var = tensors[i];
      const Tensor& grad = ctx->input(first_grad + i);
      OP_REQUIRES(ctx, var.shape() == grad.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name(i), "' has shape ",
                      var.shape().DebugString(), " but its gradient has shape ",
                      grad.shape().DebugString())));
      auto& ref = refs[i];
      ref.n = var.NumElements();
      ref.var = tensors[i].template flat<T>().data();
      ref.grad = grad.template flat<T>().data();
      int next = first_slot + i * num_slots_;
      for (int k = 0; k < kNumSlots + 2; ++k) {
        if (!algo_.SlotPresent(k, num_slots_)) {
          ref.slots[k] = nullptr;
          continue;
        }
        // As in dense_apply_op.h: the rule's trailing layer slots hold one
        // value per variable (shape ()), the others (and the EMA average)
        // have the variable's shape (the accumulator too).
        const bool one_value = k < kNumSlots && k >= kNumSlots - LayerSlotsOf<Rule>::value;
        const Tensor& slot = tensors[next];
        OP_REQUIRES(ctx, slot.shape() == (one_value ? ::tensorflow::TensorShape({}) : var.shape()),
                    absl::InvalidArgumentError(absl::StrCat(
                        "kerasopt: variable '", name(i), "' has shape ",
                        var.shape().DebugString(), " but its slot '",
                        name(next), "' has shape ",
                        slot.shape().DebugString(),
                        one_value ? " (this slot holds one value per variable: shape [])"
                                  : "")));
        ref.slots[k] = tensors[next++].template flat<S>().data();
      }
    }

    std::vector<Rule> rules(1);
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, num_slots_, &rules[0]));
    if constexpr (Algo::kPerVariableRule) {
      rules.resize(num_vars_, rules[0]);
      for (int i = 0; i < num_vars_; ++i) algo_.ForVariable(refs[i].n, &rules[i]);
    }
    const double* features;
    int feature_rows;
    OP_REQUIRES_OK(ctx, algo_.ReadStepFeatures(ctx, num_vars_, &features, &feature_rows));
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    auto parallel_for = [pool](int64_t n, int64_t cost, auto&& fn) {
      pool->ParallelFor(n, cost, fn);
    };
    if constexpr (Algo::kTakesStepFeatures) {
      if (feature_rows > 0) {
        // One rule per variable: the decay's rounding depends on its size
        // (decoupled_decay.h), and a row may be the variable's own.
        const double lr = algo_.LearningRate(ctx);
        std::vector<StepFeatures<C>> rows;
        rows.reserve(num_vars_);
        for (int i = 0; i < num_vars_; ++i) {
          const double* row = features + (feature_rows == 1 ? 0 : i) * kNumStepFeatures;
          rows.push_back(StepFeatures<C>::Make(row, lr, refs[i].n, algo_.with_average(),
                                               algo_.accumulation_steps()));
        }
        auto rule_of = [&](int i) -> const Rule& { return rules[rules.size() == 1 ? 0 : i]; };
        if constexpr (std::is_same_v<T, C> && std::is_same_v<S, C>) {
          if (algo_.accumulates()) {
            std::vector<Accumulating> accumulating;
            accumulating.reserve(num_vars_);
            for (int i = 0; i < num_vars_; ++i) {
              accumulating.push_back(Accumulating{rule_of(i), rows[i]});
            }
            MultiDriver::Apply(accumulating, refs, parallel_for);
            return;
          }
        }
        OP_REQUIRES(ctx, !algo_.accumulates(),
                    absl::InvalidArgumentError(absl::StrCat(
                        "kerasopt: ", type_string(), ": accumulation_steps takes slots of the "
                        "variable's dtype, float32 or float64")));
        std::vector<Featured> featured;
        featured.reserve(num_vars_);
        std::vector<cpu::TensorRef<Featured, T, S>> featured_refs(num_vars_);
        for (int i = 0; i < num_vars_; ++i) {
          featured.push_back(Featured{rule_of(i), rows[i]});
          featured_refs[i].n = refs[i].n;
          featured_refs[i].var = refs[i].var;
          featured_refs[i].grad = refs[i].grad;
          std::copy_n(refs[i].slots.begin(), kNumSlots + 1, featured_refs[i].slots.begin());
        }
        MultiDriver::Apply(featured, featured_refs, parallel_for);
        return;
      }
    }
    std::vector<cpu::TensorRef<Rule, T, S>> rule_refs(num_vars_);
    for (int i = 0; i < num_vars_; ++i) {
      rule_refs[i].n = refs[i].n;
      rule_refs[i].var = refs[i].var;
      rule_refs[i].grad = refs[i].grad;
      std::copy_n(refs[i].slots.begin(), kNumSlots, rule_refs[i].slots.begin());
    }
    MultiDriver::Apply(rules, rule_refs, parallel_for);
  }

  Algo algo_;
  int num_vars_ = 0;
  int num_slots_ = 0;
};

}  // namespace tf
}  // namespace kerasopt
