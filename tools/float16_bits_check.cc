// Checks cc/cpu/float16_bits.h against Eigen's own conversions (the ones
// TensorFlow's half and bfloat16 use) on EVERY input: all 65,536 16-bit
// patterns widened, all 2^32 float32 patterns narrowed, in both ISA copies of
// the loops (baseline and AVX2 + F16C where the CPU has it), with the default
// floating-point mode and with flush-to-zero + denormals-are-zero (the mode
// TensorFlow's CPU threads run in). Run by tools/float16_bits_check.sh; exits
// 1 on any difference. The two modes run on two threads (the mode is a
// per-thread setting), which halves the time on CI's two cores.
#include <xmmintrin.h>
#include <pmmintrin.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "Eigen/Core"
#include "cc/cpu/float16_bits.h"

using kerasopt::cpu::Float16ToFloat;
using kerasopt::cpu::FloatToFloat16;

namespace {

template <typename T>
uint16_t BitsOf(T x) {
  uint16_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}

// The loops under test, compiled for one ISA (see cc/cpu/isa.h).
struct Loops {
  template <typename Call>
  static void Widen(Call call, const std::vector<Eigen::half>& h, const std::vector<Eigen::bfloat16>& b,
                    std::vector<float>* from_h, std::vector<float>* from_b) {
    call([&]() KERASOPT_INLINE_LAMBDA {
      Float16ToFloat(h.data(), h.size(), from_h->data());
      Float16ToFloat(b.data(), b.size(), from_b->data());
    });
  }
  template <typename Call>
  static void Narrow(Call call, const std::vector<float>& f, std::vector<Eigen::half>* h,
                     std::vector<Eigen::bfloat16>* b) {
    call([&]() KERASOPT_INLINE_LAMBDA {
      FloatToFloat16(f.data(), f.size(), h->data());
      FloatToFloat16(f.data(), f.size(), b->data());
    });
  }
};

template <typename Call>
long CheckAll(Call call) {
  long bad = 0;
  std::vector<Eigen::half> h(65536);
  std::vector<Eigen::bfloat16> b(65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    std::memcpy(&h[i], &i, 2);
    std::memcpy(&b[i], &i, 2);
  }
  std::vector<float> from_h(65536), from_b(65536);
  Loops::Widen(call, h, b, &from_h, &from_b);
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want_h = static_cast<float>(h[i]), want_b = static_cast<float>(b[i]);
    if (std::memcmp(&from_h[i], &want_h, 4) != 0 || std::memcmp(&from_b[i], &want_b, 4) != 0) {
      if (bad++ < 5) std::printf("  widen 0x%04x differs\n", i);
    }
  }
  const size_t chunk = size_t{1} << 20;
  std::vector<float> f(chunk);
  std::vector<Eigen::half> to_h(chunk);
  std::vector<Eigen::bfloat16> to_b(chunk);
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += chunk) {
    for (size_t i = 0; i < chunk; ++i) {
      const uint32_t u = static_cast<uint32_t>(base + i);
      std::memcpy(&f[i], &u, 4);
    }
    Loops::Narrow(call, f, &to_h, &to_b);
    for (size_t i = 0; i < chunk; ++i) {
      if (BitsOf(to_h[i]) != BitsOf(Eigen::half(f[i])) ||
          BitsOf(to_b[i]) != BitsOf(Eigen::bfloat16(f[i]))) {
        if (bad++ < 5) std::printf("  narrow 0x%08x differs\n", static_cast<uint32_t>(base + i));
      }
    }
  }
  return bad;
}

// Appends one line per ISA to *report.
long CheckBothIsas(const char* mode, std::string* report) {
  char line[160];
  long bad = CheckAll([](const auto& body) { kerasopt::cpu::internal::CallBaseline(body); });
  std::snprintf(line, sizeof(line), "%s, baseline: %ld difference(s)\n", mode, bad);
  *report += line;
#if KERASOPT_HAVE_AVX2_PATH
  if (kerasopt::cpu::UseAvx2()) {
    const long avx2 = CheckAll([](const auto& body) { kerasopt::cpu::internal::CallAvx2(body); });
    std::snprintf(line, sizeof(line), "%s, avx2+f16c: %ld difference(s)\n", mode, avx2);
    *report += line;
    bad += avx2;
  }
#endif
  return bad;
}

}  // namespace

int main() {
  std::string flushed_report, default_report;
  long flushed_bad = 0;
  std::thread flushed([&] {
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
    flushed_bad = CheckBothIsas("flush-to-zero + denormals-are-zero", &flushed_report);
  });
  const long default_bad = CheckBothIsas("default mode", &default_report);
  flushed.join();
  std::printf("%s%s", default_report.c_str(), flushed_report.c_str());
  return default_bad + flushed_bad == 0 ? 0 : 1;
}
