// Records, inside the library file, the CUDA compiler its GPU kernels were
// built with (`python -m kerasopt info` reads it without loading the library).
// Without the CUDA sources there is no marker.
#if KERASOPT_WITH_CUDA
#ifndef KERASOPT_CUDA_VERSION
#error "Define KERASOPT_CUDA_VERSION to the version of nvcc that built cc/cuda."
#endif

extern "C" __attribute__((used, visibility("default")))
const char kerasopt_cuda_marker[] = "KERASOPT_CUDA_KERNELS=" KERASOPT_CUDA_VERSION ";";
#endif
