// float <-> 16-bit float conversions the CPU drivers' loops can vectorize.
//
// The drivers store float16 and bfloat16 as Eigen::half / Eigen::bfloat16
// (TensorFlow's types). Built for the baseline ISA, Eigen converts one element
// at a time with branches (no F16C), which made float16 steps about 5x slower
// than float32 ones. The functions below are branch-free forms of Eigen's
// portable conversions (Eigen/src/Core/arch/Default/Half.h and BFloat16.h:
// round to nearest even; NaN to Eigen's quiet NaN with the sign kept), giving
// the same bits for every input, so the drivers' results do not change; as
// selects instead of branches they vectorize at either ISA.
//
// The types are told apart by their mantissa digits (std::numeric_limits,
// which Eigen specializes): 11 for IEEE binary16, 8 for bfloat16. No Eigen
// header is needed here.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "cc/cpu/isa.h"

namespace kerasopt {
namespace cpu {

enum class Float16Layout { kNone, kHalf, kBfloat16 };

template <typename T>
constexpr Float16Layout LayoutOf() {
  if constexpr (sizeof(T) == 2 && std::numeric_limits<T>::is_specialized &&
                !std::numeric_limits<T>::is_integer) {
    if constexpr (std::numeric_limits<T>::digits == 11) return Float16Layout::kHalf;
    if constexpr (std::numeric_limits<T>::digits == 8) return Float16Layout::kBfloat16;
  }
  return Float16Layout::kNone;
}

namespace internal {

KERASOPT_ALWAYS_INLINE uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
KERASOPT_ALWAYS_INLINE float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

}  // namespace internal

KERASOPT_ALWAYS_INLINE float HalfBitsToFloat(uint16_t h) {
  using internal::BitsFloat;
  using internal::FloatBits;
  constexpr uint32_t kShiftedExp = 0x7c00u << 13;  // the exponent mask after the shift
  const uint32_t bits = (static_cast<uint32_t>(h) & 0x7fffu) << 13;
  const uint32_t exp = bits & kShiftedExp;
  const uint32_t normal = bits + ((127u - 15u) << 23);
  const uint32_t inf_nan = normal + ((128u - 16u) << 23);
  // Zero and subnormals: renormalized by a float subtraction.
  const uint32_t small = FloatBits(BitsFloat(normal + (1u << 23)) - BitsFloat(113u << 23));
  const uint32_t out = exp == kShiftedExp ? inf_nan : exp == 0 ? small : normal;
  return BitsFloat(out | ((static_cast<uint32_t>(h) & 0x8000u) << 16));
}

KERASOPT_ALWAYS_INLINE uint16_t FloatToHalfBits(float f) {
  using internal::BitsFloat;
  using internal::FloatBits;
  constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  const uint32_t all = FloatBits(f);
  const uint32_t sign = all & 0x80000000u;
  // Below 2^31 after the sign is cleared: signed compares vectorize best.
  const int32_t magnitude = static_cast<int32_t>(all ^ sign);
  const uint32_t m = static_cast<uint32_t>(magnitude);
  const uint32_t inf_nan = magnitude > (255 << 23) ? 0x7e00u : 0x7c00u;
  // A subnormal or zero result: the magic addend aligns the 10 mantissa bits
  // at the bottom, rounding to nearest even.
  const uint32_t small = FloatBits(BitsFloat(m) + BitsFloat(kDenormMagic)) - kDenormMagic;
  // A normal result: rebias the exponent, round to nearest even, shift.
  const uint32_t normal = (m + 0xc8000fffu + ((m >> 13) & 1u)) >> 13;
  const uint32_t out = magnitude >= ((127 + 16) << 23) ? inf_nan
                       : magnitude < (113 << 23)       ? small
                                                       : normal;
  return static_cast<uint16_t>((out | (sign >> 16)) & 0xffffu);
}

KERASOPT_ALWAYS_INLINE float Bfloat16BitsToFloat(uint16_t b) {
  return internal::BitsFloat(static_cast<uint32_t>(b) << 16);
}

KERASOPT_ALWAYS_INLINE uint16_t FloatToBfloat16Bits(float f) {
  const uint32_t all = internal::FloatBits(f);
  const uint32_t rounded = (all + 0x7fffu + ((all >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = ((all >> 16) & 0x8000u) | 0x7fc0u;
  // All ones for a NaN: a mask rather than a select, which GCC turns into a branch.
  const uint32_t nan = 0u - static_cast<uint32_t>(static_cast<int32_t>(all & 0x7fffffffu) > 0x7f800000);
  return static_cast<uint16_t>((quiet_nan & nan) | (rounded & ~nan));
}

// The 16-bit types' bits, read and written in place: a uint16_t that may alias
// them (GCC/Clang's may_alias; the drivers are built with either).
using Float16Bits = uint16_t __attribute__((may_alias));

// dst[j] = float(src[j]) for a 16-bit float type T.
template <typename T>
KERASOPT_ALWAYS_INLINE void Float16ToFloat(const T* src, int64_t len, float* __restrict dst) {
  const Float16Bits* __restrict bits = reinterpret_cast<const Float16Bits*>(src);
  for (int64_t j = 0; j < len; ++j) {
    dst[j] = LayoutOf<T>() == Float16Layout::kHalf ? HalfBitsToFloat(bits[j])
                                                   : Bfloat16BitsToFloat(bits[j]);
  }
}

// dst[j] = T(src[j]) for a 16-bit float type T (round to nearest even).
template <typename T>
KERASOPT_ALWAYS_INLINE void FloatToFloat16(const float* __restrict src, int64_t len, T* dst) {
  Float16Bits* __restrict bits = reinterpret_cast<Float16Bits*>(dst);
  for (int64_t j = 0; j < len; ++j) {
    bits[j] = LayoutOf<T>() == Float16Layout::kHalf ? FloatToHalfBits(src[j])
                                                    : FloatToBfloat16Bits(src[j]);
  }
}

}  // namespace cpu
}  // namespace kerasopt
