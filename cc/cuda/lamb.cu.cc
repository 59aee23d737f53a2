// The GPU launcher of KerasoptApplyLamb (cc/kernels/lamb.h through LambSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(LambSpec)
