// KerasoptMatrixInverseRoot: (A + eps I)^{-1/p} for a batch [..., n, n] of
// symmetric positive semi-definite matrices (cc/kernels/matrix_root.h), one
// eigendecomposition per matrix, matrices spread over the intra-op threads.
// KerasoptSymmetricEigenbasis: the same decomposition's eigenvectors, largest
// eigenvalue first (cc/kernels/symmetric_eigenbasis.h; SOAP's first bases).
#define EIGEN_USE_THREADS

#include "cc/kernels/common.h"
#include "cc/kernels/matrix_root.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace kerasopt {
namespace tf {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
namespace si = ::tensorflow::shape_inference;

REGISTER_OP("KerasoptMatrixInverseRoot")
    .Input("matrix: T")       // [..., n, n], symmetric positive semi-definite
    .Input("epsilon: double")  // damping added to the eigenvalues, >= 0
    .Output("root: T")         // (matrix + epsilon I)^(-1/p)
    .Attr("p: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](si::InferenceContext* c) {
      si::ShapeHandle in;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &in));
      si::DimensionHandle n;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(in, -1), c->Dim(in, -2), &n));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 0, &in));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("Damped inverse p-th root of symmetric PSD matrices; see cc/kernels/matrix_root.h.");

template <typename T>
class MatrixInverseRootOp : public OpKernel {
 public:
  explicit MatrixInverseRootOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("p", &p_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& matrix = ctx->input(0);
    const Tensor& epsilon_t = ctx->input(1);
    const int rank = matrix.dims();
    OP_REQUIRES(ctx, rank >= 2 && matrix.dim_size(rank - 1) == matrix.dim_size(rank - 2),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: KerasoptMatrixInverseRoot needs square matrices [..., n, n], "
                    "got shape ", matrix.shape().DebugString())));
    OP_REQUIRES(ctx, ::tensorflow::TensorShapeUtils::IsScalar(epsilon_t.shape()),
                absl::InvalidArgumentError("kerasopt: 'epsilon' must be a scalar"));
    const double epsilon = epsilon_t.scalar<double>()();
    OP_REQUIRES(ctx, epsilon >= 0.0,
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: KerasoptMatrixInverseRoot: epsilon must be >= 0, got ", epsilon)));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, matrix.shape(), &out));
    const int64_t n = rank >= 2 ? matrix.dim_size(rank - 1) : 0;
    if (n == 0 || matrix.NumElements() == 0) return;
    const int64_t batch = matrix.NumElements() / (n * n);
    const T* in = matrix.flat<T>().data();
    T* result = out->flat<T>().data();
    const int p = p_;
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // An eigendecomposition costs on the order of 10 n^3 flops.
    pool->ParallelFor(batch, 10 * n * n * n, [=](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        MatrixInverseRoot(in + b * n * n, n, p, epsilon, result + b * n * n);
      }
    });
  }

 private:
  int p_ = 2;
};

REGISTER_OP("KerasoptSymmetricEigenbasis")
    .Input("matrix: T")          // [..., n, n], symmetric
    .Output("eigenvectors: T")  // columns by decreasing eigenvalue
    .Attr("T: {float, double}")
    .SetShapeFn([](si::InferenceContext* c) {
      si::ShapeHandle in;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &in));
      si::DimensionHandle n;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(in, -1), c->Dim(in, -2), &n));
      c->set_output(0, c->input(0));
      return absl::OkStatus();
    })
    .Doc("Eigenvectors of symmetric matrices, largest eigenvalue first, decomposed in "
         "float64; see cc/kernels/symmetric_eigenbasis.h.");

template <typename T>
class SymmetricEigenbasisOp : public OpKernel {
 public:
  explicit SymmetricEigenbasisOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& matrix = ctx->input(0);
    const int rank = matrix.dims();
    OP_REQUIRES(ctx, rank >= 2 && matrix.dim_size(rank - 1) == matrix.dim_size(rank - 2),
                absl::InvalidArgumentError(absl::StrCat(
                    "kerasopt: KerasoptSymmetricEigenbasis needs square matrices [..., n, n], "
                    "got shape ", matrix.shape().DebugString())));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, matrix.shape(), &out));
    const int64_t n = matrix.dim_size(rank - 1);
    if (n == 0 || matrix.NumElements() == 0) return;
    const T* in = matrix.flat<T>().data();
    T* result = out->flat<T>().data();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(matrix.NumElements() / (n * n), 10 * n * n * n,
                      [=](int64_t begin, int64_t end) {
                        for (int64_t b = begin; b < end; ++b) {
                          SymmetricEigenbasis(in + b * n * n, n, result + b * n * n);
                        }
                      });
  }
};

REGISTER_KERNEL_BUILDER(
    Name("KerasoptSymmetricEigenbasis").Device(::tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
    SymmetricEigenbasisOp<float>);
REGISTER_KERNEL_BUILDER(
    Name("KerasoptSymmetricEigenbasis").Device(::tensorflow::DEVICE_CPU).TypeConstraint<double>("T"),
    SymmetricEigenbasisOp<double>);

#define KERASOPT_REGISTER_ROOT(T)                                                   \
  REGISTER_KERNEL_BUILDER(                                                          \
      Name("KerasoptMatrixInverseRoot").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      MatrixInverseRootOp<T>);
KERASOPT_REGISTER_ROOT(Eigen::half)
KERASOPT_REGISTER_ROOT(::tensorflow::bfloat16)
KERASOPT_REGISTER_ROOT(float)
KERASOPT_REGISTER_ROOT(double)
#undef KERASOPT_REGISTER_ROOT

}  // namespace tf
}  // namespace kerasopt
