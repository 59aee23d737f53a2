// The OpKernel shared by every sparse "apply" op (KerasoptSparseApply<Algo>):
// the rows of `var` and its slots named by a tf.IndexedSlices gradient
// (`grad` [num_indices, row...], `indices` [num_indices]) are updated by the
// algorithm's rule, run by the sparse CPU driver (cc/cpu/apply_sparse.h) on
// TensorFlow's intra-op thread pool. Duplicate indices are summed first, in
// position order; every index is checked before anything is written.
//
// The rule plugs in with the same Algo as its dense op (see dense_apply_op.h),
// so the scalar inputs and the rule are shared: the sparse op declares the
// dense op's inputs with `indices: Tindices` after `grad` (rule_ops.h).
//
// The step's features (cc/kernels/step_features.h): those of the gradient
// only (the loss scale's division, clipnorm's factors, clipvalue; on each value
// before the duplicates are summed, or with `features_on_sum` on each row's
// sum, as global_clipnorm scales Keras's dense tensor) and skip_step. Weight
// decay and the EMA act on every row of a variable, not on the rows named:
// refused (Keras's own passes run for them).
//
// Variable access: TensorFlow's dense copy-on-write protocol, not its sparse
// one (see TensorForRowUpdate).
#pragma once

#define EIGEN_USE_THREADS

#include <array>
#include <string>
#include <vector>

#include "cc/cpu/apply_sparse.h"
#include "cc/tf/dense_apply_op.h"

namespace kerasopt {
namespace tf {

// The shapes of a sparse update, checked alike by the CPU and GPU ops: var is
// [rows, row...]; values [num_indices, row...]; indices [num_indices]; every
// slot has var's shape.
inline absl::Status CheckSparseShapes(OpKernelContext* ctx, const std::vector<Tensor>& tensors,
                                      const Tensor& values, const Tensor& indices) {
  const Tensor& var = tensors[0];
  const std::string name = VariableName(ctx, 0);
  if (var.dims() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: variable '", name, "' is a scalar; sparse updates need rows"));
  }
  if (indices.dims() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: the indices for variable '", name, "' must be a vector, got shape ",
        indices.shape().DebugString()));
  }
  ::tensorflow::TensorShape want = var.shape();
  want.set_dim(0, indices.dim_size(0));
  if (values.shape() != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
        " and ", indices.dim_size(0), " indices, so its gradient values must have shape ",
        want.DebugString(), ", got ", values.shape().DebugString()));
  }
  for (size_t i = 1; i < tensors.size(); ++i) {
    if (tensors[i].shape() != var.shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
          " but its slot '", VariableName(ctx, i), "' has shape ",
          tensors[i].shape().DebugString()));
    }
  }
  return absl::OkStatus();
}

// The tensor of the variable at `input` (lock held exclusively), made safe
// to update rows of in place; S is the dtype it holds (T, or float32 slots).
//
// TensorFlow's sparse ops switch a variable to copy-on-read mode
// (EnsureSparseVariableAccess), after which every ReadVariableOp copies the
// whole buffer: Keras's Embedding reads its table that way before gathering,
// so each forward pass would copy every table. Here the variable stays in the
// copy-on-write protocol of dense updates: when a reader still holds the
// buffer, the update goes to a copy (as PrepareToUpdateVariable does, in S),
// so a tensor read before the step never changes under its reader; otherwise
// the rows are updated in place. The mode is never changed: a variable some
// other op put in copy-on-read mode (readers copy) is updated in place too,
// as TensorFlow's sparse ops do, unless a reader holds its buffer anyway.
template <typename S>
absl::Status TensorForRowUpdate(OpKernelContext* ctx, int input, Tensor* out) {
  ::tensorflow::core::RefCountPtr<::tensorflow::Var> var;
  TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
      ctx, ::tensorflow::HandleFromInput(ctx, input), &var));
  var->mu()->assert_held();
  if (!var->tensor()->IsInitialized()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kerasopt: variable '", VariableName(ctx, input), "' is not initialized"));
  }
  TF_RETURN_IF_ERROR(::tensorflow::PrepareToUpdateVariable<CPUDevice, S>(
      ctx, var->tensor(), /*copy_on_read_mode=*/false));
  *out = *var->tensor();
  return absl::OkStatus();
}

template <typename T, typename Index, typename Algo>
class SparseApplyOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;
  static constexpr int kNumSlots = Rule::kNumSlots;

  explicit SparseApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES(ctx, num_slots_ <= kNumSlots,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: at most ", kNumSlots, " slots, got ", num_slots_)));
    OP_REQUIRES_OK(ctx, algo_.CheckNumSlots(num_slots_));
    if (ctx->HasAttr("features_on_sum")) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("features_on_sum", &features_on_sum_));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    bool skip;
    OP_REQUIRES_OK(ctx, algo_.SkipsStep(ctx, /*num_vars=*/0, &skip));
    if (skip) return;  // (step_features.h: kSkipStep)
    const int grad_input = 1 + num_slots_;
    std::vector<int> variable_inputs(grad_input);
    for (int i = 0; i < grad_input; ++i) variable_inputs[i] = i;

    // The weight holds T; the slots T, or all float32 for a 16-bit T.
    OP_REQUIRES_OK(ctx, CheckDtype(ctx, 0));
    std::vector<::tensorflow::DataType> dtypes(grad_input);
    for (int i = 1; i < grad_input; ++i) OP_REQUIRES_OK(ctx, VariableDtype(ctx, i, &dtypes[i]));
    const bool wide = num_slots_ > 0 && UsesWideSlots<T>(dtypes[1]);
    for (int i = 1; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, CheckSlotDtype<T>(dtypes[i], wide, /*takes_wide=*/true,
                                            type_string(), VariableName(ctx, 0),
                                            VariableName(ctx, i)));
    }
    // Exclusive locks, in address order; sparse=false: the helper must not
    // switch the inputs to copy-on-read mode (see TensorForRowUpdate).
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, variable_inputs);
    WithSlotStorage<T, cpu::Dense>(wide, [&](auto slot_type) {
      this->template Run<decltype(slot_type)>(ctx);
    });
  }

 private:
  // The update with slots stored as S (dtypes checked, variables locked).
  template <typename S>
  void Run(OpKernelContext* ctx) {
    const int grad_input = 1 + num_slots_;
    std::vector<Tensor> tensors(grad_input);
    for (int i = 0; i < grad_input; ++i) {
      OP_REQUIRES_OK(ctx, i == 0 ? TensorForRowUpdate<T>(ctx, i, &tensors[i])
                                 : TensorForRowUpdate<S>(ctx, i, &tensors[i]));
    }
    const Tensor& var = tensors[0];
    const Tensor& values = ctx->input(grad_input);
    const Tensor& indices = ctx->input(grad_input + 1);
    OP_REQUIRES_OK(ctx, CheckSparseShapes(ctx, tensors, values, indices));

    const int64_t num_indices = indices.NumElements();
    const int64_t num_rows = var.dim_size(0);
    const Index* index_data = indices.flat<Index>().data();
    const int64_t bad = cpu::FindBadIndex(index_data, num_indices, num_rows);
    OP_REQUIRES(ctx, bad < 0,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", type_string(), ": index ",
                    bad < 0 ? 0 : static_cast<int64_t>(index_data[bad]),
                    " (at position ", bad, " of indices) is out of range [0, ",
                    num_rows, ") for variable '", VariableName(ctx, 0),
                    "' with ", num_rows, " rows; nothing was updated")));

    Rule rule;
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, num_slots_, &rule));
    const double* features;
    int feature_rows;
    OP_REQUIRES_OK(ctx, algo_.ReadStepFeatures(ctx, /*num_vars=*/0, &features, &feature_rows));
    if (feature_rows > 0) OP_REQUIRES_OK(ctx, CheckRowFeatures(features));
    if (num_indices == 0) return;

    std::array<S*, kNumSlots> slots{};
    int next = 1;
    for (int k = 0; k < kNumSlots; ++k) {
      slots[k] = algo_.SlotPresent(k, num_slots_)
                     ? tensors[next++].template flat<S>().data()
                     : nullptr;
    }
    const cpu::RowGroups groups = cpu::GroupRows(index_data, num_indices);
    const int64_t row_size = num_rows == 0 ? 0 : var.NumElements() / num_rows;
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    auto apply = [&](const auto& row_gradient) {
      cpu::ApplySparse(rule, row_size, tensors[0].template flat<T>().data(), slots,
                       values.template flat<T>().data(), index_data, groups,
                       [pool](int64_t n, int64_t cost, auto&& fn) {
                         pool->ParallelFor(n, cost, fn);
                       },
                       row_gradient);
    };
    if constexpr (Algo::kTakesStepFeatures && std::is_same_v<T, C>) {
      if (feature_rows > 0) {
        const auto step_features = StepFeatures<C>::Make(
            features, /*learning_rate=*/0.0, var.NumElements(), /*with_average=*/false);
        if (features_on_sum_) {
          apply(RowGradientFeatures<C, /*kOnSum=*/true>{step_features});
        } else {
          apply(RowGradientFeatures<C, /*kOnSum=*/false>{step_features});
        }
        return;
      }
    }
    apply(cpu::SummedValues{});
  }

  // The features a sparse step takes: the gradient's, and skip_step.
  absl::Status CheckRowFeatures(const double* features) const {
    if (!std::is_same_v<T, C>) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: ", type_string(), " takes step features for float32 and float64 "
          "variables only (Keras rounds each of its operations on 16-bit gradients), got ",
          ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value)));
    }
    for (const int column : {int{kWeightDecay}, int{kEmaMomentum}, int{kEmaOverwrite}}) {
      if (features[column] != 0.0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kerasopt: ", type_string(), ": `features` column ", column, " is ",
            features[column], ", but weight decay and the EMA act on every row of a "
            "variable, not on the rows a sparse gradient names: pass 0 (Keras's own "
            "passes run for them)"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckDtype(OpKernelContext* ctx, int input) {
    ::tensorflow::core::RefCountPtr<::tensorflow::Var> v;
    TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
        ctx, ::tensorflow::HandleFromInput(ctx, input), &v));
    const auto want = ::tensorflow::DataTypeToEnum<T>::value;
    if (v->tensor()->dtype() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: variable '", VariableName(ctx, input), "' has dtype ",
          ::tensorflow::DataTypeString(v->tensor()->dtype()),
          " but the update was given dtype ", ::tensorflow::DataTypeString(want)));
    }
    return absl::OkStatus();
  }

  Algo algo_;
  int num_slots_ = 0;
  bool features_on_sum_ = false;  // the gradient features act on each row's sum
};

}  // namespace tf
}  // namespace kerasopt
