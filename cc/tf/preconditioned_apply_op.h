// The named driver of the block-preconditioned rules (Driver::kPreconditioned:
// FullMatrixAdagrad, Shampoo): the OpKernel of their KerasoptApply<Rule> op,
// registered by rule_ops.h from the rule's declaration. One op per variable
// and step accumulates the block statistics, recomputes the block
// preconditioners when the rule says so (the only expensive part: every
// update_frequency / precondition_frequency steps), and applies the
// preconditioned step, all under the variables' locks. The math lives in
// cc/kernels/block_preconditioner.h and matrix_root.h, run by the tile pass
// of precondition_blocks.h (compiled once for every rule); the rule struct
// (cc/kernels/full_matrix_adagrad.h, shampoo.h) holds what one step computes
// from the op's inputs.
//
// The rule's first 2 * kSides slots are its statistics and preconditioners,
// [num_blocks, b, b], stored in the compute type (float32 for 16-bit
// variables); the block layout is read from their shapes: they tile the
// variable's matrix view (kSides 1: the flattened variable as one column;
// 2: [prod(shape[:-1]), shape[-1]]) into blocks of b rows (and b' columns
// from the right statistics). The others (Shampoo's grafted Adam) have the
// variable's shape and type.
#pragma once

#define EIGEN_USE_THREADS

#include <cmath>
#include <string>
#include <vector>

#include "cc/kernels/adam.h"
#include "cc/kernels/block_layout.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/precondition_blocks.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo>
class PreconditionedApplyOp : public OpKernel {
 public:
  using C = ComputeType<T>;
  using Rule = typename Algo::template Rule<C>;
  static constexpr bool kTwoSided = Rule::kSides == 2;

  explicit PreconditionedApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx), algo_(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_slots", &num_slots_));
    OP_REQUIRES_OK(ctx, algo_.CheckNumSlots(num_slots_));
  }

  void Compute(OpKernelContext* ctx) override {
    // Resource inputs: var, statistics, preconditioners, then grafting slots.
    const int num_matrix = 2 * Rule::kSides;
    const int num_resources = 1 + num_slots_;
    std::vector<int> inputs(num_resources);
    for (int i = 0; i < num_resources; ++i) inputs[i] = i;
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, /*do_lock=*/true, /*sparse=*/false, inputs);
    std::vector<Tensor> t(num_resources);
    for (int i = 0; i < num_resources; ++i) {
      const bool matrix = i >= 1 && i <= num_matrix;
      OP_REQUIRES_OK(ctx, matrix ? ReadVariable<C>(ctx, i, &t[i]) : ReadVariable<T>(ctx, i, &t[i]));
    }
    const Tensor& grad = ctx->input(num_resources);
    const Tensor& var = t[0];
    const std::string name = VariableName(ctx, 0);
    OP_REQUIRES(ctx, var.shape() == grad.shape(),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
                    " but its gradient has shape ", grad.shape().DebugString())));
    for (int i = 1 + num_matrix; i < num_resources; ++i) {
      OP_REQUIRES(ctx, t[i].shape() == var.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name, "' has shape ", var.shape().DebugString(),
                      " but its slot '", VariableName(ctx, i), "' has shape ",
                      t[i].shape().DebugString())));
    }

    // The matrix view and its tiles, checked against the slot shapes.
    int64_t rows = var.NumElements(), cols = 1;
    if (kTwoSided) {
      OP_REQUIRES(ctx, var.dims() >= 2,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: ", type_string(), " preconditions variables of rank >= 2; '",
                      name, "' has shape ", var.shape().DebugString())));
      cols = var.dim_size(var.dims() - 1);
      rows = cols == 0 ? 0 : var.NumElements() / cols;  // empty variables have no tiles
    }
    BlockLayout layout;
    OP_REQUIRES_OK(ctx, CheckLayout(ctx, name, t, rows, cols, &layout));

    Rule rule;
    OP_REQUIRES_OK(ctx, algo_.template MakeRule<C>(ctx, num_slots_, &rule));
    const double* features;  // refused unless empty (the rule is not element-wise)
    int feature_rows;
    OP_REQUIRES_OK(ctx, algo_.ReadStepFeatures(ctx, 0, &features, &feature_rows));
    const bool precondition = rule.precondition, recompute = rule.recompute;
    if (layout.size() == 0) return;

    T* w = t[0].flat<T>().data();
    const T* g = grad.flat<T>().data();
    const int64_t size = layout.size();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;

    // 1. Per tile: statistics, roots when asked, preconditioned direction D.
    std::vector<C> direction(precondition ? size : 0);
    C* matrices[4] = {};
    for (int i = 0; i < num_matrix; ++i) matrices[i] = t[1 + i].flat<C>().data();
    PreconditionBlocks<C, T>(layout, g, matrices, Rule::kSides, Rule::kRoot, rule.epsilon,
                             recompute, precondition ? direction.data() : nullptr, pool);

    // 2. The step. Full-matrix AdaGrad: w -= lr * D.
    const C lr_c = static_cast<C>(rule.learning_rate);
    auto for_each = [&](auto&& fn) {
      pool->ParallelFor(size, 8, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) fn(i);
      });
    };
    if constexpr (kTwoSided) {
      if (!precondition || rule.adam_grafting || rule.sgd_grafting) {
        GraftedStep(rule, t, g, direction, lr_c, for_each);
        return;
      }
    }
    for_each([&](int64_t i) { w[i] = static_cast<T>(static_cast<C>(w[i]) - lr_c * direction[i]); });
  }

 private:
  // Shampoo with grafting (or before preconditioning starts): the grafted
  // step A (Adam's, lr factored out, or the gradient itself).
  template <typename ForEach>
  void GraftedStep(const Rule& rule, std::vector<Tensor>& t, const T* g,
                   const std::vector<C>& direction, C lr_c, ForEach&& for_each) {
    const int64_t size = t[0].NumElements();
    T* w = t[0].flat<T>().data();
    std::vector<C> graft(size);
    if (rule.adam_grafting) {
      const AdamRule<C>& adam = rule.adam;
      T* m = t[5].flat<T>().data();
      T* v = t[6].flat<T>().data();
      for_each([&](int64_t i) {
        C a = 0, mi = static_cast<C>(m[i]), vi = static_cast<C>(v[i]), unused = 0;
        adam(a, mi, vi, unused, static_cast<C>(g[i]));
        m[i] = static_cast<T>(mi);
        v[i] = static_cast<T>(vi);
        graft[i] = -a;
      });
    } else {
      for_each([&](int64_t i) { graft[i] = static_cast<C>(g[i]); });
    }
    // The step keeps the grafted step's norm and takes Shampoo's direction:
    // w -= lr * (|A| / |D|) * D  (the grafted step itself where D = 0).
    const C* step_dir = graft.data();
    C scale = 1;
    if (rule.precondition) {
      double graft_sq = 0, direction_sq = 0;  // serial sums: the same bits for any thread count
      for (int64_t i = 0; i < size; ++i) {
        graft_sq += static_cast<double>(graft[i]) * graft[i];
        direction_sq += static_cast<double>(direction[i]) * direction[i];
      }
      if (direction_sq > 0) {
        scale = static_cast<C>(std::sqrt(graft_sq) / std::sqrt(direction_sq));
        step_dir = direction.data();
      }
    }
    const C step_size = lr_c * scale;
    for_each([&](int64_t i) { w[i] = static_cast<T>(static_cast<C>(w[i]) - step_size * step_dir[i]); });
  }

 private:
  template <typename S>
  absl::Status ReadVariable(OpKernelContext* ctx, int input, Tensor* out) {
    ::tensorflow::core::RefCountPtr<::tensorflow::Var> v;
    TF_RETURN_IF_ERROR(::tensorflow::LookupResource(
        ctx, ::tensorflow::HandleFromInput(ctx, input), &v));
    const auto want = ::tensorflow::DataTypeToEnum<S>::value;
    if (v->tensor()->dtype() != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: variable '", VariableName(ctx, input), "' has dtype ",
          ::tensorflow::DataTypeString(v->tensor()->dtype()), " but ", type_string(),
          " for a ", ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value),
          " variable needs ", ::tensorflow::DataTypeString(want)));
    }
    TF_RETURN_IF_ERROR((::tensorflow::GetInputTensorFromVariable<CPUDevice, S>(
        ctx, input, /*lock_held=*/true, /*sparse=*/false, out)));
    if (!out->IsInitialized()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kerasopt: variable '", VariableName(ctx, input), "' is not initialized"));
    }
    return absl::OkStatus();
  }

  // Statistics [num_blocks, b, b] and preconditioners of the same shape; the
  // tile sizes come from them and must tile the (rows x cols) view exactly.
  absl::Status CheckLayout(OpKernelContext* ctx, const std::string& name,
                           const std::vector<Tensor>& t, int64_t rows, int64_t cols,
                           BlockLayout* layout) {
    int64_t block[2] = {1, 1};
    const int sides = Rule::kSides;
    for (int side = 0; side < sides; ++side) {
      const Tensor& s = t[1 + side];
      const Tensor& pre = t[1 + sides + side];
      if (s.dims() != 3 || s.dim_size(1) != s.dim_size(2) || s.dim_size(1) < 1 ||
          pre.shape() != s.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kerasopt: variable '", name, "': statistics '", VariableName(ctx, 1 + side),
            "' and preconditioner '", VariableName(ctx, 1 + sides + side),
            "' must both have shape [num_blocks, b, b] with b >= 1, got ",
            s.shape().DebugString(), " and ", pre.shape().DebugString()));
      }
      block[side] = s.dim_size(1);
    }
    *layout = BlockLayout::Make(rows, cols, block[0], block[1]);
    for (int side = 0; side < sides; ++side) {
      if (t[1 + side].dim_size(0) != layout->num_blocks()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kerasopt: variable '", name, "' viewed as a ", rows, " x ", cols,
            " matrix has ", layout->num_blocks(), " blocks of ", block[0], " x ", block[1],
            " but its statistics '", VariableName(ctx, 1 + side), "' have shape ",
            t[1 + side].shape().DebugString()));
      }
    }
    return absl::OkStatus();
  }

  Algo algo_;
  int num_slots_ = 0;
};

}  // namespace tf
}  // namespace kerasopt
