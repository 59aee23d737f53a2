// Records, inside the library file, the CUDA compiler its GPU kernels were
// built with (`python -m kerasopt info` reads it without loading the library).
// Without the CUDA sources there is no marker.
#if KERASOPT_WITH_CUDA
#ifndef KERASOPT_CUDA_VERSION
#error "Define KERASOPT_CUDA_VERSION to the version of nvcc that built cc/cuda (e.g. 13.0.88)."
#endif

// The version arrives unquoted (quotes do not survive every build tool's
// command line); it is one preprocessing number, so # makes it a string.
#define KERASOPT_STRINGIFY_(x) #x
#define KERASOPT_STRINGIFY(x) KERASOPT_STRINGIFY_(x)

extern "C" __attribute__((used, visibility("default")))
const char kerasopt_cuda_marker[] =
    "KERASOPT_CUDA_KERNELS=" KERASOPT_STRINGIFY(KERASOPT_CUDA_VERSION) ";";
#endif
