// The GPU OpKernel of every multi-tensor "apply" op (KerasoptMultiApply<Algo>):
// MultiApplyOp's inputs, locking and checks (see multi_apply_op.h), then the
// multi-tensor CUDA driver (cc/cuda/multi_driver.cuh): every variable cut into
// chunks, a few launches for the whole list, pointer tables passed by value,
// on TensorFlow's stream for the op. Hyperparameters stay on the device.
//
// Resource inputs (the `vars` list and the packed `slots` tensor) are
// DT_RESOURCE, which TensorFlow always keeps in host memory, also for GPU
// kernels (DataTypeAlwaysOnHost): the handles are read on the host, the
// variables' buffers are device memory. The packed slots of GPU variables
// come from KerasoptPackHandles (pack_handles_op.cc), which has a GPU kernel,
// so the packed tensor sits with the variables and the placer keeps the whole
// update on their GPU.
//
// Rules with per-variable norms (LAMB, LARS, NovoGrad): the multi-tensor chunk
// table has no per-variable reduction yet, so the op runs the dense two-pass
// GPU launcher (deterministic chunked norms) once per variable, still in this
// one op.
//
// Host compiler, TensorFlow headers, no CUDA headers. Registered by rule_ops.h
// with the same Algo as the CPU kernel and the rule's declaration, when the
// library is built with its CUDA sources.
#pragma once

#if KERASOPT_WITH_CUDA

#include <algorithm>
#include <string>
#include <vector>

#include "cc/cuda/launch.h"
#include "cc/tf/gpu_apply_op_base.h"
#include "cc/tf/locked_resource_list.h"
#include "cc/tf/multi_apply_op.h"

namespace kerasopt {
namespace tf {

template <typename T, typename Algo, typename Spec>
class MultiApplyGpuOp : public GpuApplyOpBase<T, Algo, Spec> {
 public:
  using Base = GpuApplyOpBase<T, Algo, Spec>;

  explicit MultiApplyGpuOp(OpKernelConstruction* ctx) : Base(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &num_vars_));
  }

  void Compute(OpKernelContext* ctx) override {
    void* stream;
    OP_REQUIRES_OK(ctx, this->Stream(ctx, &stream));
    LockedResourceList resources;
    OP_REQUIRES_OK(ctx, resources.Acquire(ctx, num_vars_, this->num_slots_));
    auto name = [&](int r) -> const std::string& { return resources.name(r); };
    const int num_resources = resources.size();

    constexpr auto want = ::tensorflow::DataTypeToEnum<T>::value;
    std::vector<Tensor> tensors(num_resources);
    for (int r = 0; r < num_resources; ++r) {
      ::tensorflow::Var* v = resources.var(r);
      OP_REQUIRES(ctx, v->tensor()->dtype() == want,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name(r), "' has dtype ",
                      ::tensorflow::DataTypeString(v->tensor()->dtype()),
                      " but the update was given dtype ", ::tensorflow::DataTypeString(want))));
      OP_REQUIRES_OK(ctx, GpuPrepareDenseUpdate(ctx, v, stream, name(r)));
      tensors[r] = *v->tensor();
    }

    const int first_grad = num_vars_ + 1;
    const std::vector<bool> one_value =
        OneValueInputs<typename Base::Rule>(this->algo_, this->num_slots_);
    std::vector<cuda::TensorPointers> pointers(num_vars_);
    for (int i = 0; i < num_vars_; ++i) {
      const Tensor& var = tensors[i];
      const Tensor& grad = ctx->input(first_grad + i);
      OP_REQUIRES(ctx, var.shape() == grad.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: variable '", name(i), "' has shape ",
                      var.shape().DebugString(), " but its gradient has shape ",
                      grad.shape().DebugString())));
      cuda::TensorPointers& p = pointers[i];
      p.n = var.NumElements();
      p.var = tensors[i].data();
      p.grad = grad.data();
      const int first_slot = num_vars_ + i * this->num_slots_;
      for (int j = 1; j <= this->num_slots_; ++j) {
        const int r = first_slot + j - 1;
        const bool scalar = one_value[j];
        OP_REQUIRES(ctx, tensors[r].shape() == (scalar ? ::tensorflow::TensorShape({}) : var.shape()),
                    absl::InvalidArgumentError(absl::StrCat(
                        "kerasopt: variable '", name(i), "' has shape ",
                        var.shape().DebugString(), " but its slot '", name(r),
                        "' has shape ", tensors[r].shape().DebugString(),
                        scalar ? " (this slot holds one value per variable: shape [])" : "")));
      }
      this->SlotPointers(tensors.data() + first_slot, p.slots);
    }

    cuda::RuleInputs inputs{};
    OP_REQUIRES_OK(ctx, this->ReadRuleInputs(ctx, &inputs));

    const char* error = nullptr;
    int failed = 0;  // the variable named in the error
    if constexpr (Spec::kDriver != Driver::kElementwise) {
      OP_REQUIRES_OK(ctx, LaunchEach(ctx, stream, pointers, inputs, &error, &failed));
    } else {
      cuda::MultiArgs args{};
      args.stream = stream;
      args.num_tensors = num_vars_;
      args.tensors = pointers.data();
      args.inputs = inputs;
      error = cuda::LaunchMultiDense<Spec>(CudaDType<T>(), args);
    }
    if (error != nullptr) {
      ctx->SetStatus(absl::InternalError(absl::StrCat(
          "kerasopt: ", this->type_string(), " on ", num_vars_, " variables (from '", name(failed),
          "') failed to launch: ", error)));
    }
  }

 private:
  // One dense launch per variable, sharing one scratch buffer sized for the
  // largest: the launches queue on one stream, so they never overlap.
  absl::Status LaunchEach(OpKernelContext* ctx, void* stream,
                          const std::vector<cuda::TensorPointers>& pointers,
                          const cuda::RuleInputs& inputs, const char** error, int* failed) {
    constexpr cuda::DType dtype = CudaDType<T>();
    int64_t scratch_bytes = 0;
    for (const auto& p : pointers) {
      scratch_bytes = std::max(scratch_bytes, cuda::DenseScratchBytes<Spec>(dtype, p.n));
    }
    Tensor scratch;
    if (scratch_bytes > 0) {
      TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DT_INT8,
                                            ::tensorflow::TensorShape({scratch_bytes}),
                                            &scratch));
    }
    for (int i = 0; i < num_vars_; ++i) {
      const auto& p = pointers[i];
      if (p.n == 0) continue;
      cuda::DenseArgs args{};
      args.stream = stream;
      args.n = p.n;
      args.var = p.var;
      for (int k = 0; k < cuda::kMaxSlots; ++k) args.slots[k] = p.slots[k];
      args.grad = p.grad;
      args.scratch = scratch_bytes > 0 ? scratch.data() : nullptr;
      args.inputs = inputs;
      if ((*error = cuda::LaunchDense<Spec>(dtype, args)) != nullptr) {
        *failed = i;
        break;
      }
    }
    return absl::OkStatus();
  }

  int num_vars_ = 0;
};

}  // namespace tf
}  // namespace kerasopt

#endif  // KERASOPT_WITH_CUDA
