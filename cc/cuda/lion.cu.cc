// GPU launchers of Lion (cc/kernels/lion.h through LionSpec): dense, for KerasoptApplyLion,
// multi-tensor, for KerasoptMultiApplyLion, and sparse, for KerasoptSparseApplyLion.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(LionSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(LionSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(LionSpec)
