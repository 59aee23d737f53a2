// kerasopt._kernels.radam: cc/kernels/radam.h on NumPy arrays.
#include "cc/kernels/radam.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindRAdam(py::module_& m) {
  m.def(
      "radam",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         double learning_rate, double beta_1, double beta_2, double epsilon, long long step) {
        CheckStep(step);
        Run<RAdamRule>(var, grad, {&momentum, &velocity}, [&](auto c) {
          return RAdamRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon, step);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"), py::kw_only(),
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
      py::arg("step"),
      "One RAdam step (cc/kernels/radam.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
