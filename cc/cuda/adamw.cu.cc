// The GPU launcher of KerasoptApplyAdamw (cc/kernels/adamw.h through AdamwSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamwSpec)
