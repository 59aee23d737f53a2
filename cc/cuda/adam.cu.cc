// GPU launchers of Adam (cc/kernels/adam.h through AdamSpec): dense, for KerasoptApplyAdam,
// multi-tensor, for KerasoptMultiApplyAdam, and sparse, for KerasoptSparseApplyAdam.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdamSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(AdamSpec)
