// Runs the rules of cc/kernels/{adafactor,muon}.h over arrays
// in a file, single-threaded, summing in the orders the headers define, so
// tests/test_rules_against_fallback.py can compare them bit for bit with the
// traced composed-TF fallbacks before the fused ops exist.
//
//   rules_on_arrays <rule> <arrays file> <output file> <ints...> -- <doubles...>
//
// The arrays file holds the rule's float32 arrays one after another (their
// order below); the output file gets them back, updated.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cc/kernels/adafactor.h"
#include "cc/kernels/muon.h"

namespace {

constexpr long kBlock = 512;  // cc/cpu/apply_dense.h's kBlock

// Sum of t[0..len), double, by the drivers' block order (apply_with_norms.h).
double BlockSum(const double* t, long len) {
  double total = 0;
  for (long start = 0; start < len; start += kBlock) {
    double s[kBlock];
    for (long j = 0; j < kBlock; ++j) s[j] = start + j < len ? t[start + j] : 0.0;
    for (long h = kBlock / 2; h >= 1; h /= 2)
      for (long j = 0; j < h; ++j) s[j] = s[j] + s[j + h];
    total = total + s[0];
  }
  return total;
}

double SumOfSquares(const float* x, long n) {
  std::vector<double> t(n);
  for (long k = 0; k < n; ++k) t[k] = double(x[k]) * double(x[k]);
  return BlockSum(t.data(), n);
}

// Adafactor. ints: batch rows cols (cols 0: rank < 2 with `rows` elements) step;
// doubles: lr beta_2_decay epsilon_1 epsilon_2 clip_threshold. Arrays: w g v r c.
void Adafactor(float* a, const long* i, const double* d) {
  using Rule = kerasopt::AdafactorRule<float>;
  const long batch = i[0], n = i[1], m = i[2];
  const bool factored = m > 0;
  const long size = factored ? batch * n * m : n;
  float *w = a, *g = w + size, *v = g + size, *r = v + size, *c = r + (factored ? batch * n : 0);
  const Rule rule = Rule::Make(d[0], d[1], d[2], d[3], d[4], i[3], size);
  const double sum_w = SumOfSquares(w, size);
  if (factored) {
    for (long b = 0; b < batch; ++b) {
      std::vector<double> terms(n * m);
      for (long k = 0; k < n * m; ++k) terms[k] = rule.Regulated(g[b * n * m + k]);
      std::vector<double> new_r(n);
      for (long row = 0; row < n; ++row) {
        r[b * n + row] = rule.Average(r[b * n + row], Rule::Mean(BlockSum(&terms[row * m], m), m));
        new_r[row] = r[b * n + row];
      }
      for (long col = 0; col < m; ++col) {  // row order within chunks, then the chunks
        double total = 0;
        for (long first = 0; first < n; first += Rule::kRowsPerChunk) {
          double chunk = 0;
          for (long row = first; row < n && row < first + Rule::kRowsPerChunk; ++row)
            chunk = chunk + terms[row * m + col];
          total = total + chunk;
        }
        c[b * m + col] = rule.Average(c[b * m + col], Rule::Mean(total, n));
      }
      const float r_mean = Rule::Mean(BlockSum(new_r.data(), n), n);
      for (long row = 0; row < n; ++row)
        for (long col = 0; col < m; ++col)
          v[b * n * m + row * m + col] = Rule::Velocity(r[b * n + row], r_mean, c[b * m + col]);
    }
  } else {
    for (long k = 0; k < size; ++k) v[k] = rule.Average(v[k], rule.Regulated(g[k]));
  }
  std::vector<float> u(size);
  for (long k = 0; k < size; ++k) u[k] = Rule::Direction(g[k], v[k]);
  const Rule::Step step = rule.Finish({sum_w, SumOfSquares(u.data(), size)});
  for (long k = 0; k < size; ++k) Rule::Apply(w[k], u[k], step);
}

// Muon without Newton-Schulz iterations (ns_steps = 0: the normalization
// only, so no matrix product). ints: rows cols nesterov scaled;
// doubles: lr weight_decay momentum rms_rate. Arrays: w m g.
void MuonNormalizedOnly(float* a, const long* i, const double* d) {
  const long rows = i[0], cols = i[1], size = rows * cols;
  float *w = a, *m = w + size, *g = m + size;
  const auto rule = kerasopt::MuonRule<float>::Make(d[0], d[1], d[2], i[2] != 0, 3.4445, -4.775,
                                                    2.0315, i[3] != 0, d[3], rows, cols);
  std::vector<float> direction(size);
  for (long k = 0; k < size; ++k) direction[k] = rule.Momentum(m[k], g[k]);
  // ||d||_F over the orientation the iterations use (rows <= cols): the
  // transpose when rows > cols, whose row-major order the sum follows.
  std::vector<float> oriented(size);
  for (long row = 0; row < rows; ++row)
    for (long col = 0; col < cols; ++col)
      oriented[rows > cols ? col * rows + row : row * cols + col] = direction[row * cols + col];
  const float denominator = decltype(rule)::NormDenominator(SumOfSquares(oriented.data(), size));
  for (long k = 0; k < size; ++k) rule.Apply(w[k], direction[k] / denominator);
}

// Muon's AdamW side. ints: n step; doubles: lr adam_lr_ratio weight_decay
// beta_1 beta_2 epsilon. Arrays: w m v g.
void MuonAdamw(float* a, const long* i, const double* d) {
  const long n = i[0];
  float *w = a, *m = w + n, *v = m + n, *g = v + n;
  const auto rule = kerasopt::MuonAdamwRule<float>::Make(
      kerasopt::SharedInputs{d[0], i[1], n}, d[1], d[2], d[3], d[4], d[5]);
  for (long k = 0; k < n; ++k) rule(w[k], m[k], v[k], g[k]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const std::string rule = argv[1];
  std::vector<long> ints;
  std::vector<double> doubles;
  int k = 4;
  for (; k < argc && std::strcmp(argv[k], "--") != 0; ++k) ints.push_back(std::atol(argv[k]));
  for (++k; k < argc; ++k) doubles.push_back(std::atof(argv[k]));
  FILE* in = std::fopen(argv[2], "rb");
  if (in == nullptr) return 3;
  std::vector<float> arrays;
  float value;
  while (std::fread(&value, sizeof value, 1, in) == 1) arrays.push_back(value);
  std::fclose(in);
  if (rule == "adafactor") Adafactor(arrays.data(), ints.data(), doubles.data());
  else if (rule == "muon_normalized_only") MuonNormalizedOnly(arrays.data(), ints.data(), doubles.data());
  else if (rule == "muon_adamw") MuonAdamw(arrays.data(), ints.data(), doubles.data());
  else return 4;
  FILE* out = std::fopen(argv[3], "wb");
  std::fwrite(arrays.data(), sizeof(float), arrays.size(), out);
  std::fclose(out);
  return 0;
}
