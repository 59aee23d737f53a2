// The GPU launcher of KerasoptApplyNovoGrad (cc/kernels/novograd.h through NovoGradSpec):
// norms of the inputs, then one dense pass (cc/cuda/input_norms_driver.cuh).
// KerasoptMultiApplyNovoGrad runs it once per variable.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/input_norms_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(NovoGradSpec)
