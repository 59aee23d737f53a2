// The GPU launcher of KerasoptApplyAdadelta (cc/kernels/adadelta.h through AdadeltaSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdadeltaSpec)
