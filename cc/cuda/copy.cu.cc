// Device-to-device copy on the op's stream (a variable's copy-on-write).
#include <cuda_runtime.h>

#include "cc/cuda/launch.h"

namespace kerasopt {
namespace cuda {

const char* CopyDeviceToDevice(void* stream, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return nullptr;
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                          static_cast<cudaStream_t>(stream));
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace cuda
}  // namespace kerasopt
