// KerasoptMultiGradientStats: every gradient's sum of squares and whether all
// are finite, in one read of each and one launch for the whole list
// (cc/cpu/gradient_stats.h says in what order; the result does not depend on
// the number of threads). It serves the finite check (nonfinite.all_finite:
// LossScaleOptimizer's around kerasopt, and `nonfinite=`), which Keras runs
// as is_finite + reduce_all per gradient: for 200 small variables, 400
// launches. The clipping norms keep Keras's own sums (their bits).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cc/cpu/apply_multi.h"  // FirstItems, ForItems
#include "cc/cpu/gradient_stats.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptMultiGradientStats")
    .Input("grads: N * T")
    .Output("sums_of_squares: double")
    .Output("all_finite: bool")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      int n = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      c->set_output(0, c->Vector(n));
      c->set_output(1, c->Scalar());
      return absl::OkStatus();
    })
    .Doc("sums_of_squares[i] = sum(grads[i]^2) in float64 (a fixed order, any thread "
         "count); all_finite: no element of any gradient is inf or NaN. See "
         "cc/tf/gradient_stats_op.cc.");

template <typename T>
class MultiGradientStatsOp : public ::tensorflow::OpKernel {
 public:
  explicit MultiGradientStatsOp(::tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("N", &num_grads_));
  }

  void Compute(::tensorflow::OpKernelContext* ctx) override {
    std::vector<const T*> data(num_grads_);
    std::vector<int64_t> size(num_grads_);
    for (int i = 0; i < num_grads_; ++i) {
      data[i] = ctx->input(i).flat<T>().data();
      size[i] = ctx->input(i).NumElements();
    }
    // The chunks of all gradients numbered in a row, as the multi-tensor
    // drivers number their work items: first[i] is gradient i's first.
    const std::vector<int64_t> first = cpu::internal::FirstItems(
        size, [](int64_t n) { return (n + cpu::kStatsChunk - 1) / cpu::kStatsChunk; });
    std::vector<cpu::ChunkStats> chunks(first[num_grads_]);
    auto run = [&](int64_t begin, int64_t end) {
      cpu::internal::ForItems(first, begin, end, [&](size_t i, int64_t chunk) {
        const int64_t start = chunk * cpu::kStatsChunk;
        chunks[first[i] + chunk] = cpu::StatsOfChunk(
            data[i] + start, std::min(cpu::kStatsChunk, size[i] - start));
      });
    };
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // About one cycle per byte read, a chunk at a time.
    pool->ParallelFor(first[num_grads_], cpu::kStatsChunk * sizeof(T), run);

    ::tensorflow::Tensor* sums = nullptr;
    ::tensorflow::Tensor* all_finite = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({num_grads_}), &sums));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ::tensorflow::TensorShape({}), &all_finite));
    double bad = 0.0;
    for (int i = 0; i < num_grads_; ++i) {
      double sum = 0.0;
      for (int64_t c = first[i]; c < first[i + 1]; ++c) {
        sum += chunks[c].sum_of_squares;
        bad += chunks[c].nonfinite;
      }
      sums->flat<double>()(i) = sum;
    }
    all_finite->scalar<bool>()() = bad == 0.0;
  }

 private:
  int num_grads_ = 0;
};

#define KERASOPT_REGISTER_STATS(T)                                                   \
  REGISTER_KERNEL_BUILDER(                                                           \
      Name("KerasoptMultiGradientStats").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      MultiGradientStatsOp<T>)
KERASOPT_REGISTER_STATS(Eigen::half);
KERASOPT_REGISTER_STATS(::tensorflow::bfloat16);
KERASOPT_REGISTER_STATS(float);
KERASOPT_REGISTER_STATS(double);
#undef KERASOPT_REGISTER_STATS

}  // namespace tf
}  // namespace kerasopt
