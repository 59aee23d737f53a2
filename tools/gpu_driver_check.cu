// Runs the CUDA drivers (cc/cuda) on a real GPU against the CPU drivers
// (cc/cpu) with the same rules, without TensorFlow: for machines that have a
// GPU and nvcc but no TensorFlow build with CUDA (the test suite's GPU tests
// need one). Build and run with tools/gpu_driver_check.sh.
//
// Checks, for every per-element rule with a CUDA launcher, float32 and
// float64, every flag off and on: the dense launch, the multi-tensor launch
// (tensors of 1, 70000 and 1000 elements) and, for the rules with a sparse
// launcher, a sparse update with repeated indices (int32 and int64) and the
// report of an out-of-range index. Results must equal the CPU's to the bit;
// for the rules with per-variable norms (LAMB, LARS, NovoGrad: dense launches)
// to a tolerance, as their partial sums are added in another order.
// Prints one line per check and exits 1 if any differ.
#include <cuda_runtime.h>

#include <array>
#include <memory>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cc/cpu/apply_sparse.h"
#include "cc/cpu/driver_for.h"
#include "cc/cuda/launch.h"
#include "cc/kernels/adabelief.h"
#include "cc/kernels/adadelta.h"
#include "cc/kernels/adagrad.h"
#include "cc/kernels/adam.h"
#include "cc/kernels/adamax.h"
#include "cc/kernels/adamw.h"
#include "cc/kernels/ftrl.h"
#include "cc/kernels/lamb.h"
#include "cc/kernels/lars.h"
#include "cc/kernels/lion.h"
#include "cc/kernels/nadam.h"
#include "cc/kernels/novograd.h"
#include "cc/kernels/radam.h"
#include "cc/kernels/rmsprop.h"
#include "cc/kernels/sgd.h"
#include "cc/kernels/yogi.h"

using namespace kerasopt;

namespace {

int failures = 0;

#define CUDA_OK(x)                                                               \
  do {                                                                           \
    cudaError_t e = (x);                                                         \
    if (e != cudaSuccess) {                                                      \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(2);                                                              \
    }                                                                            \
  } while (0)

const auto serial = [](int64_t n, int64_t, auto&& fn) { fn(0, n); };

template <typename T>
struct DeviceArray {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceArray(const std::vector<T>& h) : n(h.size()) {
    CUDA_OK(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)));
    if (n) CUDA_OK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> get() const {
    std::vector<T> h(n);
    if (n) CUDA_OK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  ~DeviceArray() { cudaFree(p); }
};

template <typename T>
std::vector<T> Random(size_t n, std::mt19937& gen, bool positive) {
  std::normal_distribution<double> d;
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(positive ? std::fabs(d(gen)) + 0.1 : d(gen));
  return v;
}

// Difference allowed, relative to max(1, |cpu|) (0: bit-identical; NaN equals NaN, whose
// payload is not specified). Set only for FTRL in float64 with a general
// learning_rate_power: CUDA's pow and glibc's are not correctly rounded and
// differ in the last bits (in float32 the double pow is rounded away).
double allowed = 0;
double allowed_f32 = 0;  // the same for float32 (rules with norms only)

template <typename T>
bool Same(const std::vector<T>& a, const std::vector<T>& b, double* max_diff) {
  *max_diff = 0;
  bool same = true;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    const double d = std::fabs(double(a[i]) - double(b[i]));
    const double tolerance = sizeof(T) == 8 ? allowed : allowed_f32;
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0 && !(d <= tolerance * std::max(1.0, std::fabs(double(b[i]))))) {
      same = false;
    }
    *max_diff = std::max(*max_diff, d);
  }
  return same;
}

void Report(const std::string& what, bool same, double diff) {
  std::printf("%-4s %s (max |gpu - cpu| %.3g)\n", same ? "ok" : "DIFF", what.c_str(), diff);
  if (!same) ++failures;
}

// The learning rate, then the rule's scalars in declared order.
constexpr double kLearningRate = 0.01;
constexpr double kScalars[cuda::kMaxScalars] = {0.9, 0.999, 1e-7, 0.5, 0.1, 0.1, 0.1, 0.1};
constexpr long long kStep = 3;

// Device copies of the rule's inputs; every slot is passed (the optional one too).
struct Inputs {
  DeviceArray<double> learning_rate{std::vector<double>{kLearningRate}};
  DeviceArray<double> scalars{std::vector<double>(kScalars, kScalars + cuda::kMaxScalars)};
  DeviceArray<int64_t> step{std::vector<int64_t>{kStep}};
  cuda::RuleInputs Get(bool flag, int num_slots) const {
    cuda::RuleInputs in{};
    in.learning_rate = learning_rate.p;
    for (int i = 0; i < cuda::kMaxScalars; ++i) in.scalars[i] = scalars.p + i;
    in.step = step.p;
    for (bool& f : in.flags) f = flag;
    in.num_slots = num_slots;
    in.optional_slot = true;
    return in;
  }
};

// The rule as the device builds it, and whether the declaration accepts the values.
template <typename Spec, typename T>
typename Spec::template Rule<T> HostRule(const bool* flags, int64_t n) {
  return MakeRule<Spec, T>(SharedInputs{kLearningRate, kStep, n}, kScalars, flags);
}
template <typename Spec>
bool Accepted(const bool* flags) {
  return CheckValues<Spec>(/*optional_slot=*/true, kScalars, flags) == nullptr;
}

template <typename T> constexpr cuda::DType DTypeOf();
template <> constexpr cuda::DType DTypeOf<float>() { return cuda::DType::kFloat; }
template <> constexpr cuda::DType DTypeOf<double>() { return cuda::DType::kDouble; }

// One tensor's host state: weight and slots.
template <typename T, int K>
struct State {
  std::vector<T> w, g;
  std::array<std::vector<T>, K> s;
  State(size_t n, std::mt19937& gen) : w(Random<T>(n, gen, false)), g(Random<T>(n, gen, false)) {
    for (auto& x : s) x = Random<T>(n, gen, true);  // positive: accumulators
  }
};

template <typename Spec, typename T>
void CheckDenseAndMulti(const char* name, bool flag, const Inputs& inputs) {
  using Rule = typename Spec::template Rule<T>;
  constexpr int K = Rule::kNumSlots;
  const bool flags[cuda::kMaxFlags] = {flag, flag, flag, flag};
  if (!Accepted<Spec>(flags)) return;
  std::mt19937 gen(7);
  const std::string tag = std::string(name) + (sizeof(T) == 4 ? " f32" : " f64") +
                          (flag ? " flags=on" : " flags=off");

  std::vector<size_t> sizes = {1, 70000, 1000};
  std::vector<State<T, K>> cpu, gpu_init;
  for (size_t n : sizes) cpu.emplace_back(n, gen);
  gpu_init = cpu;
  // CPU: one dense update per tensor.
  for (auto& x : cpu) {
    const Rule rule = HostRule<Spec, T>(flags, x.w.size());
    std::array<T*, K> slots;
    for (int k = 0; k < K; ++k) slots[k] = x.s[k].data();
    cpu::ApplyDense(rule, x.w.size(), x.w.data(), slots, x.g.data(), serial);
  }
  // GPU dense, tensor by tensor; then the multi-tensor launch on fresh copies.
  for (int mode = 0; mode < 2; ++mode) {
    std::vector<std::unique_ptr<DeviceArray<T>>> keep;
    std::vector<cuda::TensorPointers> pointers;
    for (size_t t = 0; t < sizes.size(); ++t) {
      auto& x = gpu_init[t];
      cuda::TensorPointers p{};
      p.n = x.w.size();
      keep.emplace_back(new DeviceArray<T>(x.w));
      p.var = keep.back()->p;
      keep.emplace_back(new DeviceArray<T>(x.g));
      p.grad = keep.back()->p;
      for (int k = 0; k < K; ++k) {
        keep.emplace_back(new DeviceArray<T>(x.s[k]));
        p.slots[k] = keep.back()->p;
      }
      pointers.push_back(p);
    }
    const char* error = nullptr;
    if (mode == 0) {
      for (auto& p : pointers) {
        cuda::DenseArgs a{};
        a.stream = nullptr;
        a.n = p.n;
        a.var = p.var;
        for (int k = 0; k < cuda::kMaxSlots; ++k) a.slots[k] = p.slots[k];
        a.grad = p.grad;
        const int64_t bytes = cuda::DenseScratchBytes<Spec>(DTypeOf<T>(), p.n);
        void* scratch = nullptr;
        if (bytes) CUDA_OK(cudaMalloc(&scratch, bytes));
        a.scratch = scratch;
        a.inputs = inputs.Get(flag, K);
        error = cuda::LaunchDense<Spec>(DTypeOf<T>(), a);
        CUDA_OK(cudaDeviceSynchronize());
        if (scratch) cudaFree(scratch);
        if (error) break;
      }
    } else {
      if constexpr (Spec::kDriver == Driver::kElementwise) {
        cuda::MultiArgs a{};
        a.stream = nullptr;
        a.num_tensors = static_cast<int>(pointers.size());
        a.tensors = pointers.data();
        a.inputs = inputs.Get(flag, K);
        error = cuda::LaunchMultiDense<Spec>(DTypeOf<T>(), a);
        CUDA_OK(cudaDeviceSynchronize());
      } else {
        continue;
      }
    }
    const std::string what = tag + (mode == 0 ? " dense" : " multi");
    if (error) {
      Report(what + ": launch failed: " + error, false, 0);
      continue;
    }
    bool same = true;
    double diff = 0, d;
    for (size_t t = 0, a = 0; t < sizes.size(); ++t) {
      auto w = keep[a]->get();
      same &= Same(w, cpu[t].w, &d);
      diff = std::max(diff, d);
      a += 2;
      for (int k = 0; k < K; ++k, ++a) {
        same &= Same(keep[a]->get(), cpu[t].s[k], &d);
        diff = std::max(diff, d);
      }
    }
    Report(what, same, diff);
  }
}

// Rules with per-variable norms (LAMB, LARS, NovoGrad): the dense launcher
// (their multi-tensor ops run it once per variable) against their CPU driver. The GPU adds the chunks' partial sums in another order than the
// CPU, so a norm may differ in its last bits: the caller sets a tolerance.
template <typename Spec, typename T>
void CheckNorms(const char* name, bool flag, const Inputs& inputs) {
  using CpuDriver = typename cpu::DriverFor<Spec::kDriver>::type;
  using Rule = typename Spec::template Rule<T>;
  constexpr int K = Rule::kNumSlots;
  constexpr int kLayer = LayerSlotsOf<Rule>::value;  // trailing slots of one element
  const bool flags[cuda::kMaxFlags] = {flag, flag, flag, flag};
  if (!Accepted<Spec>(flags)) return;
  std::mt19937 gen(13);
  const std::string tag = std::string(name) + (sizeof(T) == 4 ? " f32" : " f64") +
                          (flag ? " flags=on" : " flags=off") + " dense";
  bool same = true;
  double diff = 0, d;
  for (size_t n : {size_t{1}, size_t{70000}, size_t{1000}}) {
    State<T, K> x(n, gen);
    for (int k = K - kLayer; k < K; ++k) x.s[k].resize(1);
    DeviceArray<T> w(x.w), g(x.g);
    std::vector<std::unique_ptr<DeviceArray<T>>> s;
    cuda::DenseArgs a{};
    a.n = n;
    a.var = w.p;
    a.grad = g.p;
    for (int k = 0; k < K; ++k) {
      s.emplace_back(new DeviceArray<T>(x.s[k]));
      a.slots[k] = s.back()->p;
    }
    const int64_t bytes = cuda::DenseScratchBytes<Spec>(DTypeOf<T>(), n);
    CUDA_OK(cudaMalloc(&a.scratch, bytes));
    a.inputs = inputs.Get(flag, K);
    const char* error = cuda::LaunchDense<Spec>(DTypeOf<T>(), a);
    CUDA_OK(cudaDeviceSynchronize());
    cudaFree(a.scratch);
    if (error) {
      Report(tag + ": launch failed: " + error, false, 0);
      return;
    }
    const Rule rule = HostRule<Spec, T>(flags, n);
    std::array<T*, K> slots;
    for (int k = 0; k < K; ++k) slots[k] = x.s[k].data();
    CpuDriver::Apply(rule, n, x.w.data(), slots, x.g.data(), serial);
    same &= Same(w.get(), x.w, &d);
    diff = std::max(diff, d);
    for (int k = 0; k < K; ++k) {
      same &= Same(s[k]->get(), x.s[k], &d);
      diff = std::max(diff, d);
    }
  }
  Report(tag, same, diff);
}

template <typename Spec, typename T, typename Index>
void CheckSparse(const char* name, bool flag, const Inputs& inputs) {
  using Rule = typename Spec::template Rule<T>;
  constexpr int K = Rule::kNumSlots;
  const bool flags[cuda::kMaxFlags] = {flag, flag, flag, flag};
  if (!Accepted<Spec>(flags)) return;
  std::mt19937 gen(11);
  const int64_t rows = 50, row_size = 600;  // a row longer than a warp's stride
  State<T, K> x(rows * row_size, gen);
  std::vector<Index> indices = {3, 7, 3, 49, 0, 7, 7, 12};
  const int64_t num = indices.size();
  std::vector<T> values = Random<T>(num * row_size, gen, false);
  const std::string tag = std::string(name) + (sizeof(T) == 4 ? " f32" : " f64") +
                          (sizeof(Index) == 4 ? " int32" : " int64") +
                          (flag ? " flags=on" : " flags=off") + " sparse";

  State<T, K> cpu = x;
  const Rule rule = HostRule<Spec, T>(flags, rows * row_size);
  std::array<T*, K> slots;
  for (int k = 0; k < K; ++k) slots[k] = cpu.s[k].data();
  cpu::ApplySparse(rule, row_size, cpu.w.data(), slots, values.data(), indices.data(),
                   cpu::GroupRows(indices.data(), num), serial);

  for (int bad = 0; bad < 2; ++bad) {
    std::vector<Index> idx = indices;
    if (bad) idx[5] = rows;  // out of range at position 5
    DeviceArray<T> w(x.w), v(values);
    DeviceArray<Index> di(idx);
    std::vector<std::unique_ptr<DeviceArray<T>>> s;
    cuda::SparseArgs a{};
    for (int k = 0; k < K; ++k) {
      s.emplace_back(new DeviceArray<T>(x.s[k]));
      a.slots[k] = s.back()->p;
    }
    a.stream = nullptr;
    a.num_rows = rows;
    a.row_size = row_size;
    a.var = w.p;
    a.grad = v.p;
    a.indices = di.p;
    a.indices_are_int64 = sizeof(Index) == 8;
    a.num_indices = num;
    void* scratch;
    CUDA_OK(cudaMalloc(&scratch, cuda::SparseScratchBytes(num, rows)));
    a.scratch = scratch;
    a.inputs = inputs.Get(flag, K);
    const char* error = cuda::LaunchSparse<Spec>(DTypeOf<T>(), a);
    int64_t position = -2, index = -2;
    if (!error) error = cuda::FetchBadIndex(a, &position, &index);
    CUDA_OK(cudaDeviceSynchronize());
    cudaFree(scratch);
    if (error) {
      Report(tag + ": failed: " + error, false, 0);
      continue;
    }
    if (bad) {
      double d;
      const bool untouched = Same(w.get(), x.w, &d);
      Report(tag + " bad index reported at position " + std::to_string(position) +
                 " (index " + std::to_string(index) + "), nothing written",
             position == 5 && index == rows && untouched, d);
      continue;
    }
    bool same = position == -1;
    double diff = 0, d;
    same &= Same(w.get(), cpu.w, &d);
    diff = std::max(diff, d);
    for (int k = 0; k < K; ++k) {
      same &= Same(s[k]->get(), cpu.s[k], &d);
      diff = std::max(diff, d);
    }
    Report(tag, same, diff);
  }
}

// Per-element rules: dense, multi-tensor and (with kSparse) sparse launches.
template <typename Spec>
void CheckAll(const char* name, const Inputs& inputs) {
  for (bool flag : {false, true}) {
    CheckDenseAndMulti<Spec, float>(name, flag, inputs);
    CheckDenseAndMulti<Spec, double>(name, flag, inputs);
    if constexpr (Spec::kSparse) {
      CheckSparse<Spec, float, int32_t>(name, flag, inputs);
      CheckSparse<Spec, double, int64_t>(name, flag, inputs);
    }
  }
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device\n");
    return 2;
  }
  cudaDeviceProp prop;
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s\n", prop.name);
  Inputs inputs;
  CheckAll<AdaBelief>("AdaBelief", inputs);
  CheckAll<Adadelta>("Adadelta", inputs);
  CheckAll<Adagrad>("Adagrad", inputs);
  CheckAll<Adam>("Adam", inputs);
  CheckAll<Adamax>("Adamax", inputs);
  CheckAll<AdamW>("AdamW", inputs);
  allowed = 1e-10;
  CheckAll<Ftrl>("Ftrl (float64: pow within 1e-10)", inputs);
  allowed = 0;
  CheckAll<Lion>("Lion", inputs);
  CheckAll<Nadam>("Nadam", inputs);
  CheckAll<RAdam>("RAdam", inputs);
  CheckAll<RMSprop>("RMSprop", inputs);
  CheckAll<SGD>("SGD", inputs);
  CheckAll<Yogi>("Yogi", inputs);
  allowed = 1e-12;
  allowed_f32 = 1e-6;
  for (bool flag : {false, true}) {
    CheckNorms<Lamb, float>("Lamb (norms: 1e-6 / 1e-12)", flag, inputs);
    CheckNorms<Lamb, double>("Lamb (norms: 1e-6 / 1e-12)", flag, inputs);
    CheckNorms<Lars, float>("Lars (norms: 1e-6 / 1e-12)", flag, inputs);
    CheckNorms<Lars, double>("Lars (norms: 1e-6 / 1e-12)", flag, inputs);
    CheckNorms<NovoGrad, float>("NovoGrad (norms: 1e-6 / 1e-12)", flag, inputs);
    CheckNorms<NovoGrad, double>("NovoGrad (norms: 1e-6 / 1e-12)", flag, inputs);
  }
  std::printf("%d check(s) differ\n", failures);
  return failures ? 1 : 0;
}
