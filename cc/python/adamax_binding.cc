// kerasopt._kernels.adamax: cc/kernels/adamax.h on NumPy arrays.
#include "cc/kernels/adamax.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdamax(py::module_& m) {
  m.def(
      "adamax",
      [](py::array var, py::array grad, py::array momentum, py::array norm,
         double learning_rate, double beta_1, double beta_2, double epsilon,
         long long step) {
        CheckStep(step);
        Run<AdamaxRule>(var, grad, {&momentum, &norm}, [&](auto c) {
          return AdamaxRule<decltype(c)>::Make(learning_rate, beta_1, beta_2,
                                               epsilon, step);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("norm"),
      py::kw_only(), py::arg("learning_rate"), py::arg("beta_1"),
      py::arg("beta_2"), py::arg("epsilon"), py::arg("step"),
      "One Adamax step (cc/kernels/adamax.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
