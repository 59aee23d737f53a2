// GPU launchers of Nadam (cc/kernels/nadam.h through NadamSpec): dense, for KerasoptApplyNadam,
// multi-tensor, for KerasoptMultiApplyNadam, and sparse, for KerasoptSparseApplyNadam.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(NadamSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(NadamSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(NadamSpec)
