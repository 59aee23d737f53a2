// The GPU launcher of KerasoptApplyNadam (cc/kernels/nadam.h through NadamSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(NadamSpec)
