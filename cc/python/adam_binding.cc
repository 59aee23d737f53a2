// kerasopt._kernels.adam: cc/kernels/adam.h on NumPy arrays.
#include "cc/kernels/adam.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdam(py::module_& m) {
  m.def(
      "adam",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         std::optional<py::array> velocity_hat, double learning_rate,
         double beta_1, double beta_2, double epsilon, long long step,
         bool amsgrad) {
        CheckStep(step);
        if (amsgrad && !velocity_hat) {
          throw py::value_error("kerasopt: amsgrad=True needs velocity_hat");
        }
        Run<AdamRule>(var, grad, {&momentum, &velocity, OrNull(velocity_hat)},
                      [&](auto c) {
                        return AdamRule<decltype(c)>::Make(learning_rate, beta_1, beta_2,
                                                           epsilon, step, amsgrad);
                      });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"),
      py::arg("velocity_hat") = py::none(), py::kw_only(), py::arg("learning_rate"),
      py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("step"),
      py::arg("amsgrad") = false,
      "One Adam step (cc/kernels/adam.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
