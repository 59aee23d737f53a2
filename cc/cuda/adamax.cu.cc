// GPU launchers of Adamax (cc/kernels/adamax.h through AdamaxSpec): dense, for KerasoptApplyAdamax,
// multi-tensor, for KerasoptMultiApplyAdamax, and sparse, for KerasoptSparseApplyAdamax.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamaxSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdamaxSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(AdamaxSpec)
