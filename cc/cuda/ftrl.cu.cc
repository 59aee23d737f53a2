// The GPU launcher of KerasoptApplyFtrl (cc/kernels/ftrl.h through FtrlSpec).
#include "cc/cuda/dense_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(FtrlSpec)
