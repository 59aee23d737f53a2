// GPU launchers of Rmsprop (cc/kernels/rmsprop.h through RmspropSpec): dense, for KerasoptApplyRmsprop,
// multi-tensor, for KerasoptMultiApplyRmsprop, and sparse, for KerasoptSparseApplyRmsprop.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(RmspropSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(RmspropSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(RmspropSpec)
