// The GPU launcher of KerasoptApplyAdamax (cc/kernels/adamax.h through AdamaxSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamaxSpec)
