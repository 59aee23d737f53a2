// kerasopt._kernels.ftrl: cc/kernels/ftrl.h on NumPy arrays.
#include "cc/kernels/ftrl.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindFtrl(py::module_& m) {
  m.def(
      "ftrl",
      [](py::array var, py::array grad, py::array accumulator, py::array linear,
         double learning_rate, double learning_rate_power, double l1, double l2,
         double l2_shrinkage, double beta) {
        Run<FtrlRule>(var, grad, {&accumulator, &linear}, [&](auto c) {
          return FtrlRule<decltype(c)>::Make(learning_rate, learning_rate_power, l1, l2,
                                             l2_shrinkage, beta);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("accumulator"), py::arg("linear"),
      py::kw_only(), py::arg("learning_rate"), py::arg("learning_rate_power"),
      py::arg("l1"), py::arg("l2"), py::arg("l2_shrinkage"), py::arg("beta"),
      "One FTRL-Proximal step (cc/kernels/ftrl.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
