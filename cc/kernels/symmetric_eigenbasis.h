// Eigenvectors of a symmetric matrix, columns ordered by decreasing
// eigenvalue: SOAP's initial bases (kerasopt/fallback/soap.py). The same
// float64 Eigen decomposition as matrix_root.h, on (A + A^T) / 2; a matrix
// with inf or NaN gives all-NaN vectors (as TensorFlow's linear algebra), never
// a crash.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "Eigen/Core"
#include "Eigen/Eigenvalues"

namespace kerasopt {

// The n x n row-major symmetric matrix `a` -> its eigenvectors as the columns
// of `out` (row-major, may alias `a`), largest eigenvalue first.
template <typename T>
void SymmetricEigenbasis(const T* a, int64_t n, T* out) {
  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (n == 0) return;
  Matrix m(n, n);
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j <= i; ++j) {
      const double v = 0.5 * (static_cast<double>(a[i * n + j]) +
                              static_cast<double>(a[j * n + i]));
      finite = finite && std::isfinite(v);
      m(i, j) = v;
      m(j, i) = v;
    }
  }
  Eigen::SelfAdjointEigenSolver<Matrix> solver;
  if (finite) solver.compute(m, Eigen::ComputeEigenvectors);
  if (!finite || solver.info() != Eigen::Success) {
    std::fill(out, out + n * n, static_cast<T>(std::numeric_limits<double>::quiet_NaN()));
    return;
  }
  const Matrix& v = solver.eigenvectors();  // columns by ascending eigenvalue
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) out[i * n + j] = static_cast<T>(v(i, n - 1 - j));
  }
}

}  // namespace kerasopt
