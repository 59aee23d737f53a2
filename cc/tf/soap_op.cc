// KerasoptApplySOAP: the element-wise part of one SOAP step (Vyas et al.
// 2024) on the tiles of a variable of rank >= 2: Adam's moments in the rotated
// basis and the step there, in one pass instead of eight TF ops.
//
//   m += (g' - m) (1 - beta_1);  v += (g'^2 - v) (1 - beta_2)
//   s' = (m * step_size) / (sqrt(v) + epsilon),
//   step_size = learning_rate * sqrt(1 - beta_2^t) / (1 - beta_1^t)   (in double)
//
// g' = Q_L^T G Q_R and the weight write w -= Q_L s' Q_R^T are TensorFlow's
// MatMul around the op (kerasopt/fallback/soap.py, which also computes this
// op's numbers in TF ops in the same order and precision: Keras's Adam order).
// m and v are [num_blocks, block_rows, block_cols] variables of the compute
// dtype C (float32 for 16-bit and float32 weights, float64 for float64 ones).
// CPU only: on a GPU the whole step runs as TF ops.
#define EIGEN_USE_THREADS

#include <cmath>
#include <cstdint>

#include "cc/tf/dense_apply_op.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptApplySOAP")
    .Input("momentum: resource")    // m in the rotated basis, updated in place
    .Input("velocity: resource")    // v in the rotated basis, updated in place
    .Input("rotated_grad: C")       // g' = Q_L^T G Q_R, the shape of m and v
    .Input("learning_rate: double")
    .Input("step: int64")           // iterations + 1
    .Input("beta_1: double")
    .Input("beta_2: double")
    .Input("epsilon: double")
    .Output("rotated_step: C")      // s', the step in the rotated basis
    .Attr("C: {float, double}")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(2));
      return absl::OkStatus();
    })
    .Doc("SOAP's Adam step in the rotated basis; see cc/tf/soap_op.cc.");

namespace {

// Reads beta in [0, 1) or epsilon >= 0; a bad value writes nothing.
absl::Status ReadSoapScalar(OpKernelContext* ctx, const char* name, double high, double* out) {
  TF_RETURN_IF_ERROR(ReadScalar(ctx, name, out));
  if (!(*out >= 0.0 && *out < high)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: KerasoptApplySOAP: '", name, "' must be in [0, ", high, "), got ", *out));
  }
  return absl::OkStatus();
}

}  // namespace

template <typename C>
class ApplySoapOp : public OpKernel {
 public:
  explicit ApplySoapOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    double learning_rate, beta_1, beta_2, epsilon;
    int64_t step;
    OP_REQUIRES_OK(ctx, ReadScalar(ctx, "learning_rate", &learning_rate));
    OP_REQUIRES_OK(ctx, ReadStep(ctx, &step));
    OP_REQUIRES_OK(ctx, ReadSoapScalar(ctx, "beta_1", 1.0, &beta_1));
    OP_REQUIRES_OK(ctx, ReadSoapScalar(ctx, "beta_2", 1.0, &beta_2));
    OP_REQUIRES_OK(ctx, ReadSoapScalar(ctx, "epsilon", INFINITY, &epsilon));

    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, C>(
        ctx, /*do_lock=*/true, /*sparse=*/false, {0, 1});
    const Tensor& grad = ctx->input(2);
    Tensor moments[2];
    for (int i = 0; i < 2; ++i) {
      OP_REQUIRES_OK(ctx, CheckVariableDtype<C>(ctx, i));
      OP_REQUIRES_OK(ctx, (::tensorflow::GetInputTensorFromVariable<CPUDevice, C>(
                              ctx, i, /*lock_held=*/true, /*sparse=*/false, &moments[i])));
      OP_REQUIRES(ctx, moments[i].shape() == grad.shape(),
                  absl::InvalidArgumentError(absl::StrCat(
                      "kerasopt: KerasoptApplySOAP: ", i == 0 ? "momentum" : "velocity", " '",
                      VariableName(ctx, i), "' has shape ", moments[i].shape().DebugString(),
                      " but the rotated gradient has shape ", grad.shape().DebugString())));
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad.shape(), &out));

    const double t = static_cast<double>(step);
    const C step_size = static_cast<C>(
        learning_rate * (std::sqrt(1.0 - std::pow(beta_2, t)) / (1.0 - std::pow(beta_1, t))));
    const C one_minus_beta_1 = C(1) - static_cast<C>(beta_1);
    const C one_minus_beta_2 = C(1) - static_cast<C>(beta_2);
    const C eps = static_cast<C>(epsilon);
    C* m = moments[0].flat<C>().data();
    C* v = moments[1].flat<C>().data();
    const C* g = grad.flat<C>().data();
    C* s = out->flat<C>().data();
    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(grad.NumElements(), 16, [=](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const C g_k = g[k];
        const C m_k = m[k] + (g_k - m[k]) * one_minus_beta_1;
        const C v_k = v[k] + (g_k * g_k - v[k]) * one_minus_beta_2;
        m[k] = m_k;
        v[k] = v_k;
        s[k] = (m_k * step_size) / (std::sqrt(v_k) + eps);
      }
    });
  }
};

#define KERASOPT_REGISTER_SOAP(C)                                                        \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("KerasoptApplySOAP").Device(::tensorflow::DEVICE_CPU).TypeConstraint<C>("C"), \
      ApplySoapOp<C>);
KERASOPT_REGISTER_SOAP(float)
KERASOPT_REGISTER_SOAP(double)
#undef KERASOPT_REGISTER_SOAP

}  // namespace tf
}  // namespace kerasopt
