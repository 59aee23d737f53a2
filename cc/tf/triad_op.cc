// KerasoptTriad: a STREAM-style triad, a = b + s * c, on float32 resource
// variables, for `python -m kerasopt.bench` to measure the machine's memory
// bandwidth with the same thread pool, the same instruction set (cc/cpu/isa.h)
// and the same kind of variables as the optimizer ops. It moves 12 bytes per
// element (read b and c, write a).
#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>

#include "cc/cpu/isa.h"
#include "cc/tf/dense_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptTriad")
    .Input("a: resource")
    .Input("b: resource")
    .Input("c: resource")
    .Input("s: float")
    .SetShapeFn(::tensorflow::shape_inference::NoOutputs)
    .Doc("a = b + s * c on float32 variables of one shape (a memory-bandwidth probe).");

namespace {

KERASOPT_ALWAYS_INLINE void TriadBody(float* __restrict a, const float* __restrict b,
                                      const float* __restrict c, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

}  // namespace

class TriadOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
        ctx, /*do_lock=*/true, /*sparse=*/false, {0, 1, 2});
    Tensor t[3];
    for (int i = 0; i < 3; ++i) {
      OP_REQUIRES_OK(ctx, ::tensorflow::GetInputTensorFromVariable<CPUDevice, float>(
                              ctx, i, /*lock_held=*/true, /*sparse=*/false, &t[i]));
      OP_REQUIRES(ctx, t[i].dtype() == ::tensorflow::DT_FLOAT && t[i].shape() == t[0].shape(),
                  absl::InvalidArgumentError(
                      "KerasoptTriad: a, b and c must be float32 variables of one shape"));
    }
    float* a = t[0].flat<float>().data();
    const float* b = t[1].flat<float>().data();
    const float* c = t[2].flat<float>().data();
    float s;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "s", &s));
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(t[0].NumElements(), 3 * 4, [&](int64_t begin, int64_t end) {
      cpu::WithBestIsa([&]() KERASOPT_INLINE_LAMBDA {
        TriadBody(a + begin, b + begin, c + begin, s, end - begin);
      });
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("KerasoptTriad").Device(::tensorflow::DEVICE_CPU), TriadOp);

}  // namespace tf
}  // namespace kerasopt
