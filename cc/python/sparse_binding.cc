// kerasopt._kernels.sparse_<rule>: the sparse driver (cc/cpu/apply_sparse.h)
// on NumPy arrays, with a chosen number of threads, so tests can check that
// the result does not depend on how the rows are split. Bound for one exact
// rule (Adagrad), FTRL and one lazy rule (Adam): the driver is the same code
// for every rule, and the TensorFlow ops cover the rest.
#include "cc/kernels/adagrad.h"
#include "cc/kernels/adam.h"
#include "cc/kernels/ftrl.h"
#include "cc/python/bind_rule.h"

namespace kerasopt {
namespace python {

void BindSparse(py::module_& m) {
  BindSparseRule<Adagrad>(m, "Adagrad");
  BindSparseRule<Ftrl>(m, "Ftrl");
  BindSparseRule<Adam>(m, "Adam");
}

}  // namespace python
}  // namespace kerasopt
