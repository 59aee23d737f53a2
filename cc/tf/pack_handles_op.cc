// KerasoptPackHandles: N resource handles as one 1-D resource tensor, the
// packed `slots` input of the KerasoptMultiApply<Algo> ops
// (kerasopt/optimizers/multi_tensor.py packs them once, outside the step).
//
// Why not tf.stack: TensorFlow's Pack has no GPU kernel for resources, so the
// packed handles of GPU variables would land on the CPU, and the placer could
// not keep the multi-tensor update (which takes them with the GPU variables)
// on one device. This op has a GPU kernel as well; handles are DT_RESOURCE,
// always in host memory, so both kernels are the same host code.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_handle.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace kerasopt {
namespace tf {

REGISTER_OP("KerasoptPackHandles")
    .Input("handles: N * resource")
    .Output("packed: resource")
    .Attr("N: int >= 1")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      int n;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      c->set_output(0, c->Vector(n));
      return absl::OkStatus();
    })
    .Doc("The N handles as a [N] resource tensor, on their device.");

class PackHandlesOp : public ::tensorflow::OpKernel {
 public:
  explicit PackHandlesOp(::tensorflow::OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(::tensorflow::OpKernelContext* ctx) override {
    const int n = ctx->num_inputs();
    ::tensorflow::Tensor* packed;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ::tensorflow::TensorShape({n}), &packed));
    auto out = packed->flat<::tensorflow::ResourceHandle>();
    for (int i = 0; i < n; ++i) {
      out(i) = ctx->input(i).scalar<::tensorflow::ResourceHandle>()();
    }
  }
};

REGISTER_KERNEL_BUILDER(Name("KerasoptPackHandles").Device(::tensorflow::DEVICE_CPU),
                        PackHandlesOp);
#if KERASOPT_WITH_CUDA
REGISTER_KERNEL_BUILDER(Name("KerasoptPackHandles").Device(::tensorflow::DEVICE_GPU),
                        PackHandlesOp);
#endif

}  // namespace tf
}  // namespace kerasopt
