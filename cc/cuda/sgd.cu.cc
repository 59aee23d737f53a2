// GPU launchers of Sgd (cc/kernels/sgd.h through SgdSpec): dense, for KerasoptApplySgd,
// multi-tensor, for KerasoptMultiApplySgd, and sparse, for KerasoptSparseApplySgd.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(SgdSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(SgdSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(SgdSpec)
