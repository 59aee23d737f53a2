// GPU launchers of Adagrad (cc/kernels/adagrad.h through AdagradSpec): dense, for KerasoptApplyAdagrad,
// multi-tensor, for KerasoptMultiApplyAdagrad, and sparse, for KerasoptSparseApplyAdagrad.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdagradSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdagradSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(AdagradSpec)
