// Which instruction set the CPU drivers run with, chosen once at run time.
//
// The library is built for the baseline x86-64 (SSE2) so it loads on any
// machine. The drivers' inner loops are compiled a second time for AVX2 + F16C
// (the KERASOPT_TARGET_AVX2 function attribute; no -mavx2 for the whole build)
// and that copy runs when the CPU has both. FMA is deliberately NOT enabled:
// with -ffp-contract=off the compiler never fuses a*b+c, so both copies round
// every operation the same way and give the same bits as TensorFlow's
// element-wise ops. KERASOPT_ISA=baseline in the environment forces the
// baseline copy (for tests and comparisons).
#pragma once

#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define KERASOPT_HAVE_AVX2_PATH 1
#define KERASOPT_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#include <immintrin.h>
#else
#define KERASOPT_HAVE_AVX2_PATH 0
#define KERASOPT_TARGET_AVX2
#endif

#if defined(__GNUC__) || defined(__clang__)
#define KERASOPT_ALWAYS_INLINE inline __attribute__((always_inline))
#define KERASOPT_INLINE_LAMBDA __attribute__((always_inline))
#define KERASOPT_NOINLINE __attribute__((noinline))
#else
#define KERASOPT_ALWAYS_INLINE inline
#define KERASOPT_INLINE_LAMBDA
#define KERASOPT_NOINLINE
#endif

namespace kerasopt {
namespace cpu {

// True when the AVX2 copies of the loops should run.
inline bool UseAvx2() {
#if KERASOPT_HAVE_AVX2_PATH
  static const bool use = [] {
    const char* isa = std::getenv("KERASOPT_ISA");
    if (isa != nullptr && std::strcmp(isa, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  }();
  return use;
#else
  return false;
#endif
}

namespace internal {
template <typename Body>
KERASOPT_NOINLINE void CallBaseline(const Body& body) {
  body();
}
#if KERASOPT_HAVE_AVX2_PATH
template <typename Body>
KERASOPT_TARGET_AVX2 KERASOPT_NOINLINE void CallAvx2(const Body& body) {
  body();
}
#endif
}  // namespace internal

// Runs body() from a function compiled for AVX2 + F16C when UseAvx2(), else
// from a baseline one. Only code inlined into that function gets its ISA, so
// `body` is a lambda marked KERASOPT_INLINE_LAMBDA that calls only
// KERASOPT_ALWAYS_INLINE functions:
//   WithBestIsa([&]() KERASOPT_INLINE_LAMBDA { SomeLoop(...); });
template <typename Body>
KERASOPT_ALWAYS_INLINE void WithBestIsa(const Body& body) {
#if KERASOPT_HAVE_AVX2_PATH
  if (UseAvx2()) {
    internal::CallAvx2(body);
    return;
  }
#endif
  internal::CallBaseline(body);
}

// The instruction set in use, for `kerasopt info` and the benchmark.
inline const char* IsaName() { return UseAvx2() ? "avx2+f16c" : "baseline"; }

}  // namespace cpu
}  // namespace kerasopt
