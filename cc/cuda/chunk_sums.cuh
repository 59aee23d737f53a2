// The deterministic sums of squares of the two-pass GPU drivers (nvcc only):
// LAMB's (dense_driver.cuh) and LARS / NovoGrad's (input_norms_driver.cuh).
//
// A variable is cut into chunks of kNormChunk elements counted from element
// 0. Element j of a chunk is handled by thread j % kThreads; kNormChunk is
// 2 * kThreads, so the first halving step of the CPU's tree
// (cc/cpu/apply_with_norms.h, h = kThreads) is each thread's own pair, and the
// rest is a shared-memory tree: the CPU's order within a chunk exactly. The
// chunks' partial sums are then added by one block in a fixed strided order
// and tree. Nothing depends on the grid, so every run gives the same bits.
#pragma once

#include <array>
#include <cstdint>

#include "cc/cuda/device_util.cuh"
#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

static_assert(kNormChunk == 2 * kThreads, "the trees below assume two elements per thread");

// Adds tree[k][0..kThreads) by a halving tree into tree[k][0]. Every thread of
// the block calls it (it synchronizes).
template <int K>
__device__ __forceinline__ void HalvingTree(double (*tree)[kThreads]) {
  __syncthreads();
  for (int h = kThreads / 2; h >= 1; h /= 2) {
    if (threadIdx.x < h) {
      for (int k = 0; k < K; ++k) {
        tree[k][threadIdx.x] = tree[k][threadIdx.x] + tree[k][threadIdx.x + h];
      }
    }
    __syncthreads();
  }
}

// One chunk: each thread passes pair[k] = t_k[j]^2 + t_k[j + kThreads]^2 for
// its j; thread 0 writes the chunk's K sums to out[0..K). Every thread of the
// block calls it; `tree` is the block's shared memory, free again on return.
template <int K>
__device__ __forceinline__ void ChunkSums(const double* pair, double (*tree)[kThreads],
                                          double* out) {
  for (int k = 0; k < K; ++k) tree[k][threadIdx.x] = pair[k];
  HalvingTree<K>(tree);
  if (threadIdx.x == 0) {
    for (int k = 0; k < K; ++k) out[k] = tree[k][0];
  }
  __syncthreads();
}

// The sums over the chunks of partials[chunk * K + k]: thread j adds chunks
// j, j + kThreads, ... in order, then a fixed tree. Run by one block; the
// result is valid in thread 0.
template <int K>
__device__ __forceinline__ std::array<double, K> SumChunkPartials(const double* partials,
                                                                 int64_t num_chunks,
                                                                 double (*tree)[kThreads]) {
  double sum[K] = {};
  for (int64_t c = threadIdx.x; c < num_chunks; c += kThreads) {
    for (int k = 0; k < K; ++k) sum[k] = sum[k] + partials[c * K + k];
  }
  for (int k = 0; k < K; ++k) tree[k][threadIdx.x] = sum[k];
  HalvingTree<K>(tree);
  std::array<double, K> sums;
  for (int k = 0; k < K; ++k) sums[k] = tree[k][0];
  return sums;
}

}  // namespace cuda
}  // namespace kerasopt
