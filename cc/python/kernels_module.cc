// kerasopt._kernels: the update rules of cc/kernels run by the CPU driver on
// NumPy arrays, in place. No TensorFlow involved: tests compare these against
// the float64 references, and tools can step optimizers on plain arrays.
//
// Arrays must be C-contiguous, writeable where updated, and share one dtype:
// float16, bfloat16 (ml_dtypes), float32 or float64.
#include "cc/python/binding.h"

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "kerasopt's C++ update rules on NumPy arrays (in place).";
  // One function per declared rule (cc/rules.bzl), named in lower case.
  for (auto bind : kerasopt::python::RuleBindings()) bind(m);
  kerasopt::python::BindSparse(m);
  kerasopt::python::BindMatrixInverseRoot(m);
  kerasopt::python::BindLookahead(m);
  kerasopt::python::BindIterateAverage(m);
}
