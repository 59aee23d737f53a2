// The GPU launcher of KerasoptApplyAdagrad (cc/kernels/adagrad.h through AdagradSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdagradSpec)
