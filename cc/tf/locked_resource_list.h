// The resources of a multi-tensor op (KerasoptMultiApply<Algo>, CPU and GPU),
// looked up and locked for the duration of Compute.
//
// The op's inputs are N variables (inputs 0..N-1) and ONE 1-D tensor of their
// N * num_slots slot handles (input N, variable-major; see multi_apply_op.h).
// Resource r < N is vars[r]; resource r >= N is element r - N of the packed
// handles, so the slots of variable i are resources N + i*num_slots + k.
// Every mutex is taken once, in address order (as TensorFlow's training ops
// lock, without their quadratic duplicate check), so two ops sharing some
// variables never deadlock.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"

namespace kerasopt {
namespace tf {

class LockedResourceList {
 public:
  // Checks the packed handles' shape, looks every resource up and locks them.
  absl::Status Acquire(::tensorflow::OpKernelContext* ctx, int num_vars, int num_slots) {
    const ::tensorflow::Tensor& slot_handles = ctx->input(num_vars);
    if (slot_handles.dims() != 1 ||
        slot_handles.NumElements() != int64_t{num_vars} * num_slots) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kerasopt: ", num_vars, " variables with ", num_slots,
          " slots each need a 1-D tensor of ", num_vars * num_slots,
          " slot handles, got shape ", slot_handles.shape().DebugString()));
    }
    const auto slot_flat = slot_handles.flat<::tensorflow::ResourceHandle>();
    const int num_resources = num_vars * (1 + num_slots);
    handles_.resize(num_resources);
    vars_.resize(num_resources);
    for (int r = 0; r < num_resources; ++r) {
      handles_[r] = r < num_vars ? &::tensorflow::HandleFromInput(ctx, r)
                                 : &slot_flat(r - num_vars);
      TF_RETURN_IF_ERROR(::tensorflow::LookupResource(ctx, *handles_[r], &vars_[r]));
    }
    std::vector<::tensorflow::mutex*> mutexes(num_resources);
    for (int r = 0; r < num_resources; ++r) mutexes[r] = vars_[r]->mu();
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    locks_.reserve(mutexes.size());
    for (auto* mu : mutexes) locks_.emplace_back(*mu);
    return absl::OkStatus();
  }

  int size() const { return static_cast<int>(vars_.size()); }
  ::tensorflow::Var* var(int r) const { return vars_[r].get(); }
  // The name users will recognise for resource r.
  const std::string& name(int r) const { return handles_[r]->name(); }

 private:
  std::vector<const ::tensorflow::ResourceHandle*> handles_;
  std::vector<::tensorflow::core::RefCountPtr<::tensorflow::Var>> vars_;
  // Declared last, so released before the references above.
  std::vector<::tensorflow::mutex_lock> locks_;
};

}  // namespace tf
}  // namespace kerasopt
