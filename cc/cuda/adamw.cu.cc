// GPU launchers of Adamw (cc/kernels/adamw.h through AdamwSpec): dense, for KerasoptApplyAdamw,
// multi-tensor, for KerasoptMultiApplyAdamw, and sparse, for KerasoptSparseApplyAdamw.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdamwSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdamwSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(AdamwSpec)
