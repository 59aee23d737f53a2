// kerasopt._kernels.adamw: cc/kernels/adamw.h on NumPy arrays.
#include "cc/kernels/adamw.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdamw(py::module_& m) {
  m.def(
      "adamw",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         std::optional<py::array> velocity_hat, double learning_rate,
         double weight_decay, double beta_1, double beta_2, double epsilon,
         long long step, bool amsgrad) {
        CheckStep(step);
        if (amsgrad && !velocity_hat) {
          throw py::value_error("kerasopt: amsgrad=True needs velocity_hat");
        }
        Run<AdamwRule>(var, grad, {&momentum, &velocity, OrNull(velocity_hat)},
                       [&](auto c) {
                         return AdamwRule<decltype(c)>::Make(
                             learning_rate, weight_decay, beta_1, beta_2, epsilon,
                             step, amsgrad, static_cast<long long>(var.size()));
                       });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"),
      py::arg("velocity_hat") = py::none(), py::kw_only(), py::arg("learning_rate"),
      py::arg("weight_decay"), py::arg("beta_1"), py::arg("beta_2"),
      py::arg("epsilon"), py::arg("step"), py::arg("amsgrad") = false,
      "One AdamW step (cc/kernels/adamw.h: decay, then Adam) on `var` and its "
      "slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
