// Pieces every CUDA driver in this directory shares (nvcc only): storage
// types, building a rule from the op's device-resident inputs, launch sizes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cc/cuda/launch.h"
#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {
namespace cuda {

// A storage type: its bits in memory and the conversions to and from the
// compute type. 16-bit floats compute in float32 and round to nearest even
// when stored, as Eigen::half and tensorflow::bfloat16 do on the CPU.
struct HalfStorage {
  using Bits = uint16_t;
  using C = float;
  static __device__ __forceinline__ C Load(Bits b) { return __half2float(__ushort_as_half(b)); }
  static __device__ __forceinline__ Bits Store(C x) { return __half_as_ushort(__float2half_rn(x)); }
};
struct Bfloat16Storage {
  using Bits = uint16_t;
  using C = float;
  static __device__ __forceinline__ C Load(Bits b) {
    return __bfloat162float(__ushort_as_bfloat16(b));
  }
  static __device__ __forceinline__ Bits Store(C x) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  }
};
template <typename T>
struct PlainStorage {
  using Bits = T;
  using C = T;
  static __device__ __forceinline__ C Load(Bits b) { return b; }
  static __device__ __forceinline__ Bits Store(C x) { return x; }
};

// Calls fn(Storage{}) for the storage type of `dtype`.
template <typename Fn>
const char* DispatchDType(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kHalf: return fn(HalfStorage{});
    case DType::kBfloat16: return fn(Bfloat16Storage{});
    case DType::kFloat: return fn(PlainStorage<float>{});
    case DType::kDouble: return fn(PlainStorage<double>{});
  }
  return "kerasopt: unknown dtype";
}

// Builds the rule on the device from the op's inputs (device memory). False
// when the values fail the declaration's checks, which the CPU op makes on
// the host (step >= 1 where the rule reads it, and Check): the caller then
// writes nothing.
template <typename Spec, typename C>
__device__ bool BuildRule(const RuleInputs& in, int64_t n,
                          typename Spec::template Rule<C>* rule) {
  constexpr int kScalars = kNumScalars<Spec>;
  double s[kScalars > 0 ? kScalars : 1];
  for (int i = 0; i < kScalars; ++i) s[i] = *in.scalars[i];
  SharedInputs shared{*in.learning_rate, 0, n};
  if (Spec::kUsesStep) {
    shared.step = static_cast<long long>(*in.step);
    if (shared.step < 1) return false;
  }
  if (CheckValues<Spec>(in.optional_slot, s, in.flags) != nullptr) return false;
  *rule = MakeRule<Spec, C>(shared, s, in.flags);
  return true;
}

// Each block builds the rule once (thread 0) and shares it: a handful of pow
// calls per block, no host round trip. Returns false in every thread of the
// block when the inputs were rejected.
template <typename Spec, typename C, typename Rule>
__device__ __forceinline__ bool BlockRule(const RuleInputs& in, int64_t n, Rule* out) {
  __shared__ Rule shared_rule;
  __shared__ bool ok;
  if (threadIdx.x == 0) ok = BuildRule<Spec, C>(in, n, &shared_rule);
  __syncthreads();
  *out = shared_rule;
  return ok;
}

// Calls rule(w, s[0], ..., s[K-1], g) and friends with the slots unpacked.
template <typename Rule, typename C, std::size_t... I>
__device__ __forceinline__ void RunRule(const Rule& rule, C& w, C* s, C g,
                                        std::index_sequence<I...>) {
  rule(w, s[I]..., g);
}

constexpr int kThreads = 256;

// Enough blocks to fill the device (a grid-stride loop does the rest), at
// least one, at most what `work` items need.
inline int GridSize(int64_t work) {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    sms = 32;
  }
  const int64_t needed = (work + kThreads - 1) / kThreads;
  const int64_t cap = static_cast<int64_t>(sms) * (2048 / kThreads);
  return static_cast<int>(needed < 1 ? 1 : needed < cap ? needed : cap);
}

inline const char* LaunchStatus() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

inline bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace cuda
}  // namespace kerasopt
