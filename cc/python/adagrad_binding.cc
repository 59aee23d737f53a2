// kerasopt._kernels.adagrad: cc/kernels/adagrad.h on NumPy arrays.
#include "cc/kernels/adagrad.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdagrad(py::module_& m) {
  m.def(
      "adagrad",
      [](py::array var, py::array grad, py::array accumulator, double learning_rate,
         double epsilon) {
        Run<AdagradRule>(var, grad, {&accumulator}, [&](auto c) {
          return AdagradRule<decltype(c)>::Make(learning_rate, epsilon);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("accumulator"), py::kw_only(),
      py::arg("learning_rate"), py::arg("epsilon"),
      "One Adagrad step (cc/kernels/adagrad.h) on `var` and its accumulator, in place.");
}

}  // namespace python
}  // namespace kerasopt
