// The OpKernel shared by every dense "apply" op: it locks the variable and its
// slots (in address order, as TensorFlow's training ops do), checks dtypes and
// shapes, builds the algorithm's rule from the op's scalar inputs and runs it
// over the memory with the CPU driver on TensorFlow's intra-op thread pool.
//
// The rule plugs in through its Algo, RuleAlgo<Decl> (rule_algo.h), made from
// the rule's declaration:
//   template <typename C> using Rule = ...;               // from cc/kernels/
//   explicit Algo(OpKernelConstruction*);                  // reads attrs
//   absl::Status CheckNumSlots(int num_slots) const;
//   template <typename C>
//   absl::Status MakeRule(OpKernelContext*, int num_slots, Rule<C>*) const;
//   bool SlotPresent(int slot, int num_slots) const;       // which rule slot each
//                                                          // passed resource fills
// The third template argument picks the CPU driver the rule runs with
// (cc/cpu/driver_for.h): cpu::Dense (apply_dense.h, one pass, the default),
// cpu::WithNorms (apply_with_norms.h, two passes with per-variable norms:
// LAMB), cpu::AfterNorms (LARS) or cpu::Layerwise (apply_layerwise.h,
// per-variable scalar slots driven by ||g||: NovoGrad). A rule's trailing
// Rule::kNumLayerSlots slots (0 if it declares none) must have shape (), the
// others the variable's. The ops are registered by rule_ops.h.
#pragma once

#define EIGEN_USE_THREADS

#include <algorithm>
#include <array>
#include <string>
#include <type_traits>
#include <vector>

#include "cc/cpu/apply_dense.h"
#include "cc/kernels/common.h"
#include "cc/kernels/step_features.h"
#include "cc/tf/slot_storage.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/util/work_sharder.h"

namespace kerasopt {
namespace tf {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using CPUDevice = Eigen::ThreadPoolDevice;

// Reads the scalar input `name` (declared `double` or `int64` in the op).
template <typename S>
absl::Status ReadScalar(OpKernelContext* ctx, const char* name, S* out) {
  const Tensor* t;
  TF_RETURN_IF_ERROR(ctx->input(name, &t));
  if (!::tensorflow::TensorShapeUtils::IsScalar(t->shape())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: '", name, "' must be a scalar, got shape ",
        t->shape().DebugString()));
  }
  *out = t->scalar<S>()();
  return absl::OkStatus();
}

// Reads the op's `step` input (optimizer.iterations + 1). It counts from 1:
// bias corrections divide by 1 - beta^step, which is 0 at step 0.
inline absl::Status ReadStep(OpKernelContext* ctx, int64_t* step) {
  TF_RETURN_IF_ERROR(ReadScalar(ctx, "step", step));
  if (*step < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: ", ctx->op_kernel().type_string(), ": step counts from 1, got ", *step));
  }
  return absl::OkStatus();
}

// The name users will recognise for the variable at `input`.
inline std::string VariableName(OpKernelContext* ctx, int input) {
  return ::tensorflow::HandleFromInput(ctx, input).name();
}

// The dtype of the variable at `input`.
inline absl::Status VariableDtype(OpKernelContext* ctx, int input,
                                  ::tensorflow::DataType* dtype) {
  ::tensorflow::core::RefCountPtr<::tensorflow::Var> v;
  TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
      ctx, ::tensorflow::HandleFromInput(ctx, input), &v));
  *dtype = v->tensor()->dtype();
  return absl::OkStatus();
}

// Fails unless the variable at `input` holds dtype T.
template <typename T>
absl::Status CheckVariableDtype(OpKernelContext* ctx, int input) {
  ::tensorflow::DataType dtype;
  TF_RETURN_IF_ERROR(VariableDtype(ctx, input, &dtype));
  const auto want = ::tensorflow::DataTypeToEnum<T>::value;
  if (dtype != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: variable '", VariableName(ctx, input), "' has dtype ",
        ::tensorflow::DataTypeString(dtype),
        " but the update was given dtype ", ::tensorflow::DataTypeString(want)));
  }
  return absl::OkStatus();
}

// Fails unless the gradient and every slot (tensors[1..]) have the shape of
// the variable (tensors[0]); a slot i with one_value[i] (a rule's per-variable
// layer slot, e.g. NovoGrad's second moment) must have shape () instead.
// Which of the op's variable inputs (0: the weight, 1..num_slots: the passed
// slots) hold one value per variable: the rule's trailing layer slots (shape
// ()); the others have the variable's shape.
template <typename Rule, typename Algo>
std::vector<bool> OneValueInputs(const Algo& algo, int num_slots) {
  std::vector<bool> one_value(1 + num_slots, false);
  for (int i = 1, k = 0; i <= num_slots; ++i, ++k) {
    while (!algo.SlotPresent(k, num_slots)) ++k;
    // (k == Rule::kNumSlots: the EMA average, shaped like the variable.)
    one_value[i] = k < Rule::kNumSlots && k >= Rule::kNumSlots - LayerSlotsOf<Rule>::value;
  }
  return one_value;
}

inline absl::Status CheckDenseShapes(OpKernelContext* ctx, const std::vector<Tensor>& tensors,
                                     const Tensor& grad,
                                     const std::vector<bool>& one_value = {}) {
  const Tensor& var = tensors[0];
  if (var.shape() != grad.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: variable '", VariableName(ctx, 0), "' has shape ",
        var.shape().DebugString(), " but its gradient has shape ",
        grad.shape().DebugString()));
  }
  for (size_t i = 1; i < tensors.size(); ++i) {
    const bool scalar = i < one_value.size() && one_value[i];
    const ::tensorflow::TensorShape want = scalar ? ::tensorflow::TensorShape({}) : var.shape();
    if (tensors[i].shape() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: variable '", VariableName(ctx, 0), "' has shape ",
          var.shape().DebugString(), " but its slot '",
          VariableName(ctx, static_cast<int>(i)), "' has shape ",
          tensors[i].shape().DebugString(),
          scalar ? " (this slot holds one value per variable: shape [])" : ""));
    }
  }
  return absl::OkStatus();
}

// The applying step of gradient accumulation computes Keras's (g + acc) / k
// in the variable's own dtype, which for float16/bfloat16 (computed in
// float32) would round once where Keras rounds twice: refused there, and
// kerasopt keeps Keras's own accumulation for such variables.
template <typename T, typename Algo>
absl::Status CheckAccumulationDtype(const Algo& algo, const std::string& op) {
  if (algo.accumulates() && !std::is_same_v<T, ComputeType<T>>) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: ", op, ": accumulation_steps takes float32 or float64 variables, got ",
        ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value)));
  }
  return absl::OkStatus();
}

template <typename T, typename Algo, typename Driver = cpu::Dense>
class DenseApplyOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;
  static constexpr int kNumSlots = Rule::kNumSlots;

  explicit DenseApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
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
    OP_REQUIRES_OK(ctx, algo_.SkipsStep(ctx, /*num_vars=*/0, &skip));
    if (skip) return;  // (step_features.h: kSkipStep)
    const int grad_input = 1 + num_slots_;
    std::vector<int> variable_inputs(grad_input);
    for (int i = 0; i < grad_input; ++i) variable_inputs[i] = i;
    // (Dense access: the lock helper's T plays no part for any input.)
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, variable_inputs);

    // The weight holds T; the slots T, or all float32 for a 16-bit T.
    OP_REQUIRES_OK(ctx, CheckVariableDtype<T>(ctx, 0));
    std::vector<::tensorflow::DataType> dtypes(grad_input);
    for (int i = 1; i < grad_input; ++i) OP_REQUIRES_OK(ctx, VariableDtype(ctx, i, &dtypes[i]));
    const bool wide = num_slots_ > 0 && UsesWideSlots<T>(dtypes[1]);
    for (int i = 1; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, CheckSlotDtype<T>(dtypes[i], wide, TakesWideSlots<Driver>::value,
                                            type_string(), VariableName(ctx, 0),
                                            VariableName(ctx, i)));
    }
    WithSlotStorage<T, Driver>(wide, [&](auto slot_type) {
      this->template Run<decltype(slot_type)>(ctx);
    });
  }

 private:
  // The update with slots stored as S (dtypes checked).
  template <typename S>
  void Run(OpKernelContext* ctx) {
    const int grad_input = 1 + num_slots_;
    // tensors[0] is the weight, tensors[1..] the slots, in input order.
    std::vector<Tensor> tensors(grad_input);
    for (int i = 0; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, i == 0 ? ::tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
                                       ctx, i, /*lock_held=*/true, /*sparse=*/false, &tensors[i])
                                 : ::tensorflow::GetInputTensorFromVariable<CPUDevice, S>(
                                       ctx, i, /*lock_held=*/true, /*sparse=*/false, &tensors[i]));
      OP_REQUIRES(ctx, tensors[i].IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "kerasopt: variable '", VariableName(ctx, i),
                      "' is not initialized")));
    }
    const Tensor& grad = ctx->input(grad_input);
    const Tensor& var = tensors[0];
    OP_REQUIRES_OK(ctx, CheckDenseShapes(ctx, tensors, grad,
                                         OneValueInputs<Rule>(algo_, num_slots_)));

    Rule rule;
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, num_slots_, &rule));
    const double* features;
    int feature_rows;
    OP_REQUIRES_OK(ctx, algo_.ReadStepFeatures(ctx, /*num_vars=*/0, &features, &feature_rows));

    // The rule's slots, then (with_average) the EMA average, then (on the
    // applying step of gradient accumulation) the accumulator.
    std::array<S*, kNumSlots + 2> all_slots{};
    int next = 1;
    for (int k = 0; k < kNumSlots + 2; ++k) {
      all_slots[k] = algo_.SlotPresent(k, num_slots_)
                     ? tensors[next++].template flat<S>().data()
                     : nullptr;
    }
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    auto parallel_for = [pool](int64_t n, int64_t cost, auto&& fn) {
      pool->ParallelFor(n, cost, fn);
    };
    T* w = tensors[0].template flat<T>().data();
    const T* g = grad.template flat<T>().data();
    if constexpr (Algo::kTakesStepFeatures) {
      if (feature_rows > 0) {
        const StepFeatures<C> step_features =
            StepFeatures<C>::Make(features, algo_.LearningRate(ctx), var.NumElements(),
                                  algo_.with_average(), algo_.accumulation_steps());
        if constexpr (std::is_same_v<T, C> && std::is_same_v<S, C>) {
          if (algo_.accumulates()) {
            using Accumulating = typename Algo::template AccumulatingRule<C>;
            Driver::Apply(Accumulating{rule, step_features}, var.NumElements(), w, all_slots, g,
                          parallel_for);
            return;
          }
        }
        OP_REQUIRES(ctx, !algo_.accumulates(),
                    absl::InvalidArgumentError(absl::StrCat(
                        "kerasopt: ", type_string(), ": accumulation_steps takes slots of the "
                        "variable's dtype, float32 or float64")));
        using Featured = typename Algo::template FeaturedRule<C>;
        std::array<S*, kNumSlots + 1> slots;
        std::copy_n(all_slots.begin(), kNumSlots + 1, slots.begin());
        Driver::Apply(Featured{rule, step_features}, var.NumElements(), w, slots, g,
                      parallel_for);
        return;
      }
    }
    std::array<S*, kNumSlots> rule_slots;
    std::copy_n(all_slots.begin(), kNumSlots, rule_slots.begin());
    Driver::Apply(rule, var.NumElements(), w, rule_slots, g, parallel_for);
  }


  Algo algo_;
  int num_slots_ = 0;
};

}  // namespace tf
}  // namespace kerasopt
