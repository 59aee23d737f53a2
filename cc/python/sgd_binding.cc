// kerasopt._kernels.sgd: cc/kernels/sgd.h on NumPy arrays.
#include "cc/kernels/sgd.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindSgd(py::module_& m) {
  m.def(
      "sgd",
      [](py::array var, py::array grad, std::optional<py::array> momentum_slot,
         double learning_rate, double momentum, bool nesterov) {
        if (momentum != 0.0 && !momentum_slot) {
          throw py::value_error("kerasopt: momentum != 0 needs momentum_slot");
        }
        Run<SgdRule>(var, grad, {OrNull(momentum_slot)}, [&](auto c) {
          return SgdRule<decltype(c)>::Make(learning_rate, momentum, nesterov);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum_slot") = py::none(),
      py::kw_only(), py::arg("learning_rate"), py::arg("momentum") = 0.0,
      py::arg("nesterov") = false,
      "One SGD step (cc/kernels/sgd.h) on `var` and its momentum, in place.");
}

}  // namespace python
}  // namespace kerasopt
