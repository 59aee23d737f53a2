// GPU launchers of RAdam (cc/kernels/radam.h through RAdamSpec): dense, for
// KerasoptApplyRAdam, and multi-tensor, for KerasoptMultiApplyRAdam.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(RAdamSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(RAdamSpec)
