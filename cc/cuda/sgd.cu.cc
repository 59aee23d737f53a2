// The GPU launcher of KerasoptApplySgd (cc/kernels/sgd.h through SgdSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(SgdSpec)
