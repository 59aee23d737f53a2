// GPU launchers of Ftrl (cc/kernels/ftrl.h through FtrlSpec): dense, for KerasoptApplyFtrl,
// multi-tensor, for KerasoptMultiApplyFtrl, and sparse, for KerasoptSparseApplyFtrl.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(FtrlSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(FtrlSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(FtrlSpec)
