// The TensorFlow ops of a declared rule (cc/kernels/declaration.h), built
// from its declaration alone, for every rule in cc/rules.bzl:
//   KerasoptApply<Name>        one variable (dense_apply_op.h)
//   KerasoptSparseApply<Name>  the rows a tf.IndexedSlices gradient names
//                              (sparse_apply_op.h; rules with kSparse)
//   KerasoptMultiApply<Name>   a list of variables in one launch (multi_apply_op.h)
// with their CPU kernels for every float dtype, and their GPU kernels
// (*_gpu_op.h) when the library is built with its CUDA sources. A rule with
// the preconditioned driver has the first op only, with its own CPU kernel
// (preconditioned_apply_op.h); so has the factored one (Adafactor:
// factored_apply_op.h).
//
// Every op takes its variable, slots and gradient, then the inputs every rule
// shares (learning_rate: double, step: int64), then the rule's kScalars
// (double) and its kFlags (bool attrs), then (dense and multi-tensor ops) the
// step's features (clipping, weight decay, EMA: cc/kernels/step_features.h).
// Inputs meant for every op are added once, here and in SharedInputs.
//
// RegisterRuleOps<Decl>(name, header) runs when the library is loaded, from
// the rule's generated source (cc/tf/rule_ops.cc.in).
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cc/cpu/driver_for.h"
#include "cc/kernels/declaration.h"
#include "cc/tf/dense_apply_gpu_op.h"
#include "cc/tf/dense_apply_op.h"
#include "cc/tf/factored_apply_op.h"
#include "cc/tf/multi_apply_gpu_op.h"
#include "cc/tf/multi_apply_op.h"
#include "cc/tf/preconditioned_apply_op.h"
#include "cc/tf/rule_algo.h"
#include "cc/tf/sparse_apply_gpu_op.h"
#include "cc/tf/sparse_apply_op.h"
#include "tensorflow/core/framework/kernel_def_builder.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

namespace internal {

// "momentum, velocity[, velocity_hat if amsgrad]", for the op's doc.
template <typename Decl>
std::string SlotsDoc() {
  std::vector<std::string> names;
  for (const Slot& slot : Decl::kSlots) {
    if (slot.when == Slot::kAlways) {
      names.push_back(slot.name);
    } else if (slot.when == Slot::kOptional) {
      names.push_back(absl::StrCat("[", slot.name, "]"));
    } else {
      names.push_back(absl::StrCat("[", slot.name, " if ", Decl::kFlags[slot.when].name, "]"));
    }
  }
  return absl::StrJoin(names, ", ");
}

// Which ops take which of the step's features (cc/kernels/step_features.h).
enum class FeatureInputs {
  kWholeVariable,  // the dense and multi-tensor ops: all, the EMA slot's attr too
  kRows,           // the sparse ops: the gradient's only (sparse_apply_op.h)
};

// learning_rate, step, the rule's scalars, the step's features and the op's
// flags. The sparse ops take the gradient's features only: Keras decays and
// averages every row of a variable, not the rows a gradient names, so a
// sparse step keeps Keras's own passes for those.
template <typename Decl>
void AddRuleInputs(::tensorflow::register_op::OpDefBuilderWrapper& op, FeatureInputs inputs) {
  op.Input("learning_rate: double").Input("step: int64");  // step: optimizer.iterations + 1
  for (const char* scalar : Decl::kScalars) op.Input(absl::StrCat(scalar, ": double"));
  // [0]: a plain step; [kNumStepFeatures]; the multi-tensor op also [N, kNumStepFeatures].
  op.Input("features: double");
  if (inputs == FeatureInputs::kRows) {
    // The gradient features act on each row's sum (global_clipnorm), not on
    // each value before the duplicates are summed.
    op.Attr("features_on_sum: bool = false");
  } else {
    op.Attr("with_average: bool = false");  // the last slot is Keras's EMA average
    // k > 0: the applying step of gradient_accumulation_steps=k; Keras's
    // gradient accumulator is one more slot, after the average.
    op.Attr("accumulation_steps: int >= 0 = 0");
  }
  op.Attr("T: {half, bfloat16, float, double}").Attr("num_slots: int >= 0");
  for (const Flag& flag : Decl::kFlags) {
    op.Attr(absl::StrCat(flag.name, ": bool = ", flag.default_value ? "true" : "false"));
  }
  op.SetShapeFn(::tensorflow::shape_inference::NoOutputs);
}

template <typename Decl>
void RegisterOpDefs(const char* rule, const char* header, const std::string& dense,
                    const std::string& sparse, const std::string& multi) {
  const std::string slots = SlotsDoc<Decl>();
  {
    ::tensorflow::register_op::OpDefBuilderWrapper op(dense.c_str());
    op.Input("var: resource").Input("slots: num_slots * resource").Input("grad: T");
    AddRuleInputs<Decl>(op, FeatureInputs::kWholeVariable);
    op.Doc(absl::StrCat(rule, " update of `var` and its slots (", slots, ") by `grad`; see ",
                        header, "."));
    op();
  }
  if (!sparse.empty()) {
    ::tensorflow::register_op::OpDefBuilderWrapper op(sparse.c_str());
    op.Input("var: resource").Input("slots: num_slots * resource");
    op.Input("grad: T");           // values of the IndexedSlices: [num_indices, row...]
    op.Input("indices: Tindices");  // rows of var, [num_indices]
    op.Attr("Tindices: {int32, int64}");
    AddRuleInputs<Decl>(op, FeatureInputs::kRows);
    op.Doc(absl::StrCat("Sparse form of ", dense, ": the rows of `var` and its slots named by "
                        "`indices`, with duplicate indices summed; see cc/tf/sparse_apply_op.h."));
    op();
  }
  if (!multi.empty()) {
    // vars: N resources; slots: ONE 1-D tensor of N * num_slots handles,
    // variable-major (see multi_apply_op.h); grads: N tensors.
    ::tensorflow::register_op::OpDefBuilderWrapper op(multi.c_str());
    op.Input("vars: N * resource").Input("slots: resource").Input("grads: N * T");
    op.Attr("N: int >= 1");
    AddRuleInputs<Decl>(op, FeatureInputs::kWholeVariable);
    op.Doc(absl::StrCat(dense, " on N variables in one launch."));
    op();
  }
}

template <typename Kernel>
void RegisterKernel(const ::tensorflow::KernelDef* def, const char* class_name) {
  ::tensorflow::kernel_factory::OpKernelRegistrar registrar(
      def, class_name,
      [](::tensorflow::OpKernelConstruction* ctx) -> ::tensorflow::OpKernel* {
        return new Kernel(ctx);
      });
}

// Calls fn(T{}) for every float dtype the ops take. The sanitizer build
// (tools/sanitize.sh) registers float32 kernels only: its tests run float32,
// and the other dtypes' kernels were most of its compile time.
template <typename Fn>
void ForEachDtype(Fn&& fn) {
#if !KERASOPT_FLOAT32_KERNELS_ONLY
  fn(Eigen::half{});
  fn(::tensorflow::bfloat16{});
#endif
  fn(float{});
#if !KERASOPT_FLOAT32_KERNELS_ONLY
  fn(double{});
#endif
}

// The kernel of `op` for dtype T on `device` (and index type I for a sparse op).
template <typename T, typename I = void>
const ::tensorflow::KernelDef* KernelFor(const std::string& op, const char* device) {
  ::tensorflow::KernelDefBuilder builder(op.c_str());
  builder.Device(device).TypeConstraint<T>("T");
  if constexpr (!std::is_void_v<I>) builder.TypeConstraint<I>("Tindices");
  return builder.Build();
}

}  // namespace internal

// The preconditioned rules: one op, its own CPU kernel.
template <typename Decl>
void RegisterPreconditionedOps(const char* rule, const char* header) {
  using namespace internal;  // NOLINT(build/namespaces)
  const std::string dense = absl::StrCat("KerasoptApply", rule);
  RegisterOpDefs<Decl>(rule, header, dense, "", "");
  ForEachDtype([&](auto dtype) {
    using T = decltype(dtype);
    RegisterKernel<PreconditionedApplyOp<T, RuleAlgo<Decl>>>(KernelFor<T>(dense, "CPU"),
                                                             "PreconditionedApplyOp");
  });
}

// The factored rule (Adafactor): one op, its own CPU kernel.
template <typename Decl>
void RegisterFactoredOps(const char* rule, const char* header) {
  using namespace internal;  // NOLINT(build/namespaces)
  const std::string dense = absl::StrCat("KerasoptApply", rule);
  RegisterOpDefs<Decl>(rule, header, dense, "", "");
  ForEachDtype([&](auto dtype) {
    using T = decltype(dtype);
    RegisterKernel<FactoredApplyOp<T, RuleAlgo<Decl>>>(KernelFor<T>(dense, "CPU"),
                                                       "FactoredApplyOp");
  });
}

// The ops of the rules the CPU drivers (and the CUDA ones) run.
template <typename Decl>
bool RegisterElementOps(const char* rule, const char* header) {
  using namespace internal;  // NOLINT(build/namespaces)
  using Algo = RuleAlgo<Decl>;
  using Driver = typename cpu::DriverFor<Decl::kDriver>::type;
  constexpr bool kSparse = Decl::kSparse && Decl::kDriver == kerasopt::Driver::kElementwise;
  const std::string dense = absl::StrCat("KerasoptApply", rule);
  const std::string sparse = kSparse ? absl::StrCat("KerasoptSparseApply", rule) : "";
  const std::string multi = absl::StrCat("KerasoptMultiApply", rule);
  RegisterOpDefs<Decl>(rule, header, dense, sparse, multi);

  ForEachDtype([&](auto dtype) {
    using T = decltype(dtype);
    RegisterKernel<DenseApplyOp<T, Algo, Driver>>(KernelFor<T>(dense, "CPU"), "DenseApplyOp");
    RegisterKernel<MultiApplyOp<T, Algo, Driver>>(KernelFor<T>(multi, "CPU"), "MultiApplyOp");
    if constexpr (kSparse) {
      RegisterKernel<SparseApplyOp<T, int32_t, Algo>>(KernelFor<T, int32_t>(sparse, "CPU"),
                                                      "SparseApplyOp");
      RegisterKernel<SparseApplyOp<T, int64_t, Algo>>(KernelFor<T, int64_t>(sparse, "CPU"),
                                                      "SparseApplyOp");
    }
#if KERASOPT_WITH_CUDA
    RegisterKernel<DenseApplyGpuOp<T, Algo, Decl>>(KernelFor<T>(dense, "GPU"), "DenseApplyGpuOp");
    RegisterKernel<MultiApplyGpuOp<T, Algo, Decl>>(KernelFor<T>(multi, "GPU"), "MultiApplyGpuOp");
    if constexpr (kSparse) {
      // Indices in device memory, as TensorFlow's GPU gathers.
      RegisterKernel<SparseApplyGpuOp<T, int32_t, Algo, Decl>>(
          KernelFor<T, int32_t>(sparse, "GPU"), "SparseApplyGpuOp");
      RegisterKernel<SparseApplyGpuOp<T, int64_t, Algo, Decl>>(
          KernelFor<T, int64_t>(sparse, "GPU"), "SparseApplyGpuOp");
    }
#endif
  });
  return true;
}

template <typename Decl>
bool RegisterRuleOps(const char* rule, const char* header) {
  using namespace internal;  // NOLINT(build/namespaces)
  if constexpr (Decl::kDriver == kerasopt::Driver::kPreconditioned) {
    RegisterPreconditionedOps<Decl>(rule, header);
    return true;
  } else if constexpr (Decl::kDriver == kerasopt::Driver::kFactored) {
    RegisterFactoredOps<Decl>(rule, header);
    return true;
  } else {
    return RegisterElementOps<Decl>(rule, header);
  }
}

}  // namespace tf
}  // namespace kerasopt
