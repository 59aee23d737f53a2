// GPU launchers of AdaBelief (cc/kernels/adabelief.h through AdaBeliefSpec): dense, for
// KerasoptApplyAdaBelief, and multi-tensor, for KerasoptMultiApplyAdaBelief.
#include "cc/cuda/dense_driver.cuh"
#include "cc/cuda/multi_driver.cuh"

KERASOPT_CUDA_DENSE_LAUNCHER(AdaBeliefSpec)
KERASOPT_CUDA_MULTI_LAUNCHER(AdaBeliefSpec)
