// The GPU launcher of KerasoptApplyRmsprop (cc/kernels/rmsprop.h through RmspropSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(RmspropSpec)
