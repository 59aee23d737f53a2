// The GPU launcher of KerasoptApplyLars (cc/kernels/lars.h through LarsSpec):
// norms of the inputs, then one dense pass (cc/cuda/input_norms_driver.cuh).
// KerasoptMultiApplyLars runs it once per variable.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/input_norms_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(LarsSpec)
