// kerasopt._kernels.lion: cc/kernels/lion.h on NumPy arrays.
#include "cc/kernels/lion.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindLion(py::module_& m) {
  m.def(
      "lion",
      [](py::array var, py::array grad, py::array momentum, double learning_rate,
         double beta_1, double beta_2) {
        Run<LionRule>(var, grad, {&momentum}, [&](auto c) {
          return LionRule<decltype(c)>::Make(learning_rate, beta_1, beta_2);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::kw_only(),
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"),
      "One Lion step (cc/kernels/lion.h) on `var` and its momentum, in place.");
}

}  // namespace python
}  // namespace kerasopt
