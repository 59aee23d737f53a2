// kerasopt._kernels.rmsprop: cc/kernels/rmsprop.h on NumPy arrays.
#include "cc/kernels/rmsprop.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindRmsprop(py::module_& m) {
  m.def(
      "rmsprop",
      [](py::array var, py::array grad, py::array velocity,
         std::optional<py::array> momentum_slot,
         std::optional<py::array> average_gradient, double learning_rate,
         double rho, double momentum, double epsilon, bool centered) {
        if ((momentum > 0.0) != static_cast<bool>(momentum_slot)) {
          throw py::value_error(
              "kerasopt: momentum_slot must be given exactly when momentum > 0");
        }
        if (centered != static_cast<bool>(average_gradient)) {
          throw py::value_error(
              "kerasopt: average_gradient must be given exactly when centered=True");
        }
        Run<RmspropRule>(var, grad,
                         {&velocity, OrNull(momentum_slot), OrNull(average_gradient)},
                         [&](auto c) {
                           return RmspropRule<decltype(c)>::Make(
                               learning_rate, rho, momentum, epsilon, centered);
                         });
      },
      py::arg("var"), py::arg("grad"), py::arg("velocity"),
      py::arg("momentum_slot") = py::none(), py::arg("average_gradient") = py::none(),
      py::kw_only(), py::arg("learning_rate"), py::arg("rho"),
      py::arg("momentum") = 0.0, py::arg("epsilon"), py::arg("centered") = false,
      "One RMSprop step (cc/kernels/rmsprop.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
