// The GPU launcher of KerasoptApplyAdam (cc/kernels/adam.h through AdamSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamSpec)
