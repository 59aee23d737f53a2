// The algorithm-independent half of the sparse GPU path: the index check and
// the sort of positions by row (see cc/cuda/sparse_driver.cuh).
#include <cub/device/device_radix_sort.cuh>

#include "cc/cuda/sparse_driver.cuh"

namespace kerasopt {
namespace cuda {
namespace {

template <typename Index>
__global__ void PrepareKeysKernel(const Index* indices, int64_t num_indices, int64_t num_rows,
                                  SparseLayout layout) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < num_indices;
       i += stride) {
    const int64_t row = static_cast<int64_t>(indices[i]);
    if (row < 0 || row >= num_rows) atomicMin(layout.bad, static_cast<unsigned long long>(i));
    layout.keys_in[i] = row;
    layout.positions_in[i] = i;
  }
}

// Key bits to sort: enough for every row number (out-of-range keys need no
// order: nothing is written then).
int EndBit(int64_t num_rows) {
  int bits = 1;
  while (bits < 63 && (int64_t{1} << bits) < num_rows) ++bits;
  return bits;
}

size_t SortBytes(int64_t num_indices, int64_t num_rows) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int64_t*>(nullptr),
                                  static_cast<int64_t*>(nullptr),
                                  static_cast<const int64_t*>(nullptr),
                                  static_cast<int64_t*>(nullptr), num_indices, 0,
                                  EndBit(num_rows));
  return bytes;
}

}  // namespace

int64_t SparseScratchBytes(int64_t num_indices, int64_t num_rows) {
  return SparseLayout::FixedBytes(num_indices) +
         AlignUp(static_cast<int64_t>(SortBytes(num_indices, num_rows)));
}

const char* PrepareSparse(const SparseArgs& args) {
  const auto stream = static_cast<cudaStream_t>(args.stream);
  const SparseLayout layout(args.scratch, args.num_indices);
  cudaError_t err = cudaMemsetAsync(layout.bad, 0xff, sizeof(*layout.bad), stream);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  const int blocks = GridSize(args.num_indices);
  if (args.indices_are_int64) {
    PrepareKeysKernel<<<blocks, kThreads, 0, stream>>>(
        static_cast<const int64_t*>(args.indices), args.num_indices, args.num_rows, layout);
  } else {
    PrepareKeysKernel<<<blocks, kThreads, 0, stream>>>(
        static_cast<const int32_t*>(args.indices), args.num_indices, args.num_rows, layout);
  }
  if (const char* error = LaunchStatus()) return error;
  size_t bytes = SortBytes(args.num_indices, args.num_rows);
  err = cub::DeviceRadixSort::SortPairs(layout.sort_storage, bytes, layout.keys_in,
                                        layout.keys_out, layout.positions_in,
                                        layout.positions_out, args.num_indices, 0,
                                        EndBit(args.num_rows), stream);
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

const char* FetchBadIndex(const SparseArgs& args, int64_t* position, int64_t* index) {
  *position = -1;
  *index = -1;
  if (args.num_indices == 0) return nullptr;
  const SparseLayout layout(args.scratch, args.num_indices);
  unsigned long long bad = kNoBadIndex;
  const auto stream = static_cast<cudaStream_t>(args.stream);
  cudaError_t err = cudaMemcpyAsync(&bad, layout.bad, sizeof(bad), cudaMemcpyDeviceToHost, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (bad == kNoBadIndex) return nullptr;
  *position = static_cast<int64_t>(bad);
  // Only on the error path: a second read, for the message.
  const int width = args.indices_are_int64 ? 8 : 4;
  int64_t wide = 0;
  int32_t narrow = 0;
  void* dst = args.indices_are_int64 ? static_cast<void*>(&wide) : static_cast<void*>(&narrow);
  err = cudaMemcpyAsync(dst, static_cast<const char*>(args.indices) + bad * width, width,
                        cudaMemcpyDeviceToHost, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  *index = args.indices_are_int64 ? wide : narrow;
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace cuda
}  // namespace kerasopt
