// The GPU launcher of KerasoptApplyLion (cc/kernels/lion.h through LionSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(LionSpec)
