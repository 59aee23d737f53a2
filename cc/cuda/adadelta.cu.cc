// GPU launchers of Adadelta (cc/kernels/adadelta.h through AdadeltaSpec): dense, for KerasoptApplyAdadelta,
// multi-tensor, for KerasoptMultiApplyAdadelta, and sparse, for KerasoptSparseApplyAdadelta.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"
#include "cc/cuda/sparse_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdadeltaSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdadeltaSpec)
KERASOPT_CUDA_SPARSE_LAUNCHER(AdadeltaSpec)
