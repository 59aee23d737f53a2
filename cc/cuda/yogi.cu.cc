// GPU launchers of Yogi (cc/kernels/yogi.h through YogiSpec): dense, for
// KerasoptApplyYogi, and multi-tensor, for KerasoptMultiApplyYogi.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(YogiSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(YogiSpec)
