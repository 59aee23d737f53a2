// kerasopt._kernels.matrix_inverse_root: cc/kernels/matrix_root.h on NumPy arrays.
#include "cc/kernels/matrix_root.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindMatrixInverseRoot(py::module_& m) {
  m.def(
      "matrix_inverse_root",
      [](py::array matrix, int p, double epsilon) {
        if (p < 1) throw py::value_error("kerasopt: p must be >= 1, got " + std::to_string(p));
        if (!(epsilon >= 0.0)) {
          throw py::value_error("kerasopt: epsilon must be >= 0, got " + std::to_string(epsilon));
        }
        const int rank = static_cast<int>(matrix.ndim());
        if (rank < 2 || matrix.shape(rank - 1) != matrix.shape(rank - 2)) {
          throw py::value_error("kerasopt: 'matrix' must have shape [..., n, n], got " +
                                ShapeOf(matrix));
        }
        const Dtype dtype = DtypeOf(matrix);
        // A C-contiguous copy to read from and a fresh array of the same dtype to fill.
        py::array in = py::module_::import("numpy").attr("ascontiguousarray")(matrix);
        py::array out = py::module_::import("numpy").attr("empty_like")(in);
        const int64_t n = matrix.shape(rank - 1);
        const int64_t batch = n == 0 ? 0 : in.size() / (n * n);
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const T* a = static_cast<const T*>(in.data());
          T* r = static_cast<T*>(out.mutable_data());
          py::gil_scoped_release release;
          for (int64_t b = 0; b < batch; ++b) {
            MatrixInverseRoot(a + b * n * n, n, p, epsilon, r + b * n * n);
          }
        };
        switch (dtype) {
          case Dtype::kHalf: run(Eigen::half{}); break;
          case Dtype::kBfloat16: run(Eigen::bfloat16{}); break;
          case Dtype::kFloat: run(float{}); break;
          case Dtype::kDouble: run(double{}); break;
        }
        return out;
      },
      py::arg("matrix"), py::arg("p"), py::arg("epsilon"),
      "(matrix + epsilon I)^(-1/p) for symmetric PSD matrices [..., n, n] "
      "(cc/kernels/matrix_root.h); a new array of the same dtype.");
}

}  // namespace python
}  // namespace kerasopt
