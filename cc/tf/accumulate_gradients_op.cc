// KerasoptMultiAccumulateGradients: acc[i] += grads[i] for N accumulators in
// one launch, the accumulating steps of Keras's `gradient_accumulation_steps`
// (kerasopt/optimizers/gradient_accumulation.py).
//
// `skip`: this is the applying step; the update op, beside this one in the
// step (no cond between them), reads and resets the accumulators instead.
//
// `cycle_start`: this is the first step of a cycle, when every accumulator is
// zero (Keras resets all of them on each applying step, and they start at
// zero). Then acc = g + 0 is written without reading acc (streaming stores for
// accumulators larger than the cache: StoreGradientPlusZero): 8 bytes per
// float32 parameter instead of 12, and the same bits as Keras's g + acc with
// acc = +0 (x + 0 is x, and -0 + 0 is +0, as Keras's sum gives).
//
// Keras runs `acc.assign(g + acc)` per variable: one op launch (and, for a
// small variable, most of its cost) per variable per step. The accumulators
// come as ONE 1-D tensor of handles, packed once outside the step (as the
// multi-tensor ops take their slots, multi_apply_op.h): a step that captured
// each handle paid about 1.7 us per accumulator per call. Here one op reads
// each gradient and accumulator once and writes the accumulator once, in
// place (12 bytes per float32 parameter), sharded over all elements of all
// variables. `acc + g` is one IEEE addition, commutative, so the bits are
// Keras's `g + acc`. The applying step (the k-th) reads the accumulator inside
// the update op instead (cc/kernels/step_features.h: AccumulatedMean).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_handle.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptMultiAccumulateGradients")
    .Input("accumulators: resource")  // [N] handles, packed
    .Input("grads: N * T")
    .Input("cycle_start: bool")
    .Input("skip: bool")
    .Attr("N: int >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("accumulators[i] += grads[i] for every i, in one pass (Keras's gradient "
         "accumulation); with cycle_start, accumulators[i] = grads[i] + 0 (they are "
         "zero then); with skip, nothing (the applying step, when the update op runs "
         "beside this one outside a cond); see cc/tf/accumulate_gradients_op.cc.");

// acc[e] = grad[e] + 0 for e < len (a cycle's first step). The stores are
// streaming: the accumulator is written without being read, so an ordinary
// store would first fetch each line it misses from memory (4 more bytes per
// float32 parameter); with `stream`, for accumulators larger than the cache,
// none is fetched. x + 0 with SSE's addition gives the scalar's bits.
template <typename T>
void StoreGradientPlusZero(T* __restrict acc, const T* __restrict grad, int64_t len,
                           bool stream) {
  int64_t e = 0;
#if defined(__SSE2__)
  if (stream) {
    constexpr int64_t kLanes = 16 / sizeof(T);
    for (; e < len && (reinterpret_cast<uintptr_t>(acc + e) & 15) != 0; ++e) {
      acc[e] = grad[e] + T(0);
    }
    for (; e + kLanes <= len; e += kLanes) {
      if constexpr (std::is_same_v<T, float>) {
        _mm_stream_ps(acc + e, _mm_add_ps(_mm_loadu_ps(grad + e), _mm_setzero_ps()));
      } else {
        _mm_stream_pd(acc + e, _mm_add_pd(_mm_loadu_pd(grad + e), _mm_setzero_pd()));
      }
    }
  }
#endif
  for (; e < len; ++e) acc[e] = grad[e] + T(0);
#if defined(__SSE2__)
  if (stream) _mm_sfence();  // the streamed lines are visible before the op ends
#endif
}

template <typename T>
class MultiAccumulateGradientsOp : public ::tensorflow::OpKernel {
 public:
  explicit MultiAccumulateGradientsOp(::tensorflow::OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &num_vars_));
  }

  void Compute(::tensorflow::OpKernelContext* ctx) override {
    using CPUDevice = Eigen::ThreadPoolDevice;
    const ::tensorflow::Tensor& packed = ctx->input(0);
    OP_REQUIRES(ctx, packed.dims() == 1 && packed.NumElements() == num_vars_,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: ", num_vars_, " gradients need a 1-D tensor of ", num_vars_,
                    " accumulator handles, got shape ", packed.shape().DebugString())));
    const ::tensorflow::Tensor& cycle_start_input = ctx->input(1 + num_vars_);
    OP_REQUIRES(ctx, ::tensorflow::TensorShapeUtils::IsScalar(cycle_start_input.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: cycle_start must be a scalar, got shape ",
                    cycle_start_input.shape().DebugString())));
    const bool cycle_start = cycle_start_input.scalar<bool>()();
    const ::tensorflow::Tensor& skip_input = ctx->input(2 + num_vars_);
    OP_REQUIRES(ctx, ::tensorflow::TensorShapeUtils::IsScalar(skip_input.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: skip must be a scalar, got shape ",
                    skip_input.shape().DebugString())));
    if (skip_input.scalar<bool>()()) return;
    std::vector<::tensorflow::core::RefCountPtr<::tensorflow::Var>> vars(num_vars_);
    std::vector<const ::tensorflow::ResourceHandle*> handles(num_vars_);
    const auto packed_handles = packed.flat<::tensorflow::ResourceHandle>();
    for (int i = 0; i < num_vars_; ++i) {
      handles[i] = &packed_handles(i);
      OP_REQUIRES_OK(ctx, ::tensorflow::LookupResource(ctx, *handles[i], &vars[i]));
    }
    // Every mutex once, in address order (as multi-tensor ops lock: no deadlock).
    std::vector<::tensorflow::mutex*> mutexes(num_vars_);
    for (int i = 0; i < num_vars_; ++i) mutexes[i] = vars[i]->mu();
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    std::vector<::tensorflow::mutex_lock> locks;
    locks.reserve(mutexes.size());
    for (auto* mu : mutexes) locks.emplace_back(*mu);

    // Every check before any write: a refused call changes nothing.
    for (int i = 0; i < num_vars_; ++i) {
      const ::tensorflow::Tensor* acc = vars[i]->tensor();
      const ::tensorflow::Tensor& grad = ctx->input(1 + i);
      const std::string& name = handles[i]->name();
      OP_REQUIRES(ctx, acc->IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "kerasopt: gradient accumulator '", name, "' is not initialized")));
      OP_REQUIRES(ctx, acc->dtype() == ::tensorflow::DataTypeToEnum<T>::value,
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: gradient accumulator '", name, "' has dtype ",
                      ::tensorflow::DataTypeString(acc->dtype()), " but its gradient has dtype ",
                      ::tensorflow::DataTypeString(::tensorflow::DataTypeToEnum<T>::value))));
      OP_REQUIRES(ctx, acc->shape() == grad.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: gradient accumulator '", name, "' has shape ",
                      acc->shape().DebugString(), " but its gradient has shape ",
                      grad.shape().DebugString())));
    }
    std::vector<T*> accs(num_vars_);
    std::vector<const T*> grads(num_vars_);
    std::vector<int64_t> first(num_vars_ + 1, 0);  // first[i]: first element of variable i
    for (int i = 0; i < num_vars_; ++i) {
      ::tensorflow::Var* v = vars[i].get();
      OP_REQUIRES_OK(ctx, ::tensorflow::PrepareToUpdateVariable<CPUDevice, T>(
                              ctx, v->tensor(), v->copy_on_read_mode.load()));
      accs[i] = v->tensor()->flat<T>().data();
      grads[i] = ctx->input(1 + i).flat<T>().data();
      first[i + 1] = first[i] + v->tensor()->NumElements();
    }
    const bool stream = first[num_vars_] * static_cast<int64_t>(sizeof(T)) >= kStreamBytes;
    auto add_range = [&](int64_t begin, int64_t end) {
      int i = static_cast<int>(std::upper_bound(first.begin(), first.end(), begin) -
                               first.begin()) - 1;
      for (int64_t start = begin; start < end; ++i) {
        const int64_t stop = std::min(end, first[i + 1]);
        T* __restrict acc = accs[i] + (start - first[i]);
        const T* __restrict grad = grads[i] + (start - first[i]);
        const int64_t len = stop - start;
        if (cycle_start) {
          StoreGradientPlusZero(acc, grad, len, stream);
        } else {
          for (int64_t e = 0; e < len; ++e) acc[e] = acc[e] + grad[e];
        }
        start = stop;
      }
    };
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // About 3 memory accesses per element (2 at a cycle's start).
    pool->ParallelFor(first[num_vars_], /*cost_per_unit=*/12, add_range);
  }

 private:
  int num_vars_ = 0;
  // Accumulators of this many bytes or more (with their gradients, twice as
  // many) do not stay in a CPU's last-level cache between steps anyway (this
  // machine's: 32 MiB): their first step's stores stream past it.
  static constexpr int64_t kStreamBytes = int64_t{16} << 20;
};

REGISTER_KERNEL_BUILDER(Name("KerasoptMultiAccumulateGradients")
                            .Device(::tensorflow::DEVICE_CPU)
                            .TypeConstraint<float>("T"),
                        MultiAccumulateGradientsOp<float>);
REGISTER_KERNEL_BUILDER(Name("KerasoptMultiAccumulateGradients")
                            .Device(::tensorflow::DEVICE_CPU)
                            .TypeConstraint<double>("T"),
                        MultiAccumulateGradientsOp<double>);

}  // namespace tf
}  // namespace kerasopt
