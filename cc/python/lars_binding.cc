// kerasopt._kernels.lars: cc/kernels/lars.h on NumPy arrays, with the driver of
// cc/cpu/apply_after_norms.h.
#include "cc/cpu/apply_after_norms.h"
#include "cc/kernels/lars.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindLars(py::module_& m) {
  m.def(
      "lars",
      [](py::array var, py::array grad, std::optional<py::array> momentum_slot,
         double learning_rate, double momentum, double weight_decay, double eta,
         bool nesterov, bool layer_adaptation) {
        if (momentum != 0.0 && !momentum_slot) {
          throw py::value_error("kerasopt: momentum != 0 needs momentum_slot");
        }
        Run<LarsRule, cpu::AfterNorms>(var, grad, {OrNull(momentum_slot)}, [&](auto c) {
          return LarsRule<decltype(c)>::Make(learning_rate, momentum, weight_decay, eta,
                                             nesterov, layer_adaptation);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum_slot") = py::none(),
      py::kw_only(), py::arg("learning_rate"), py::arg("momentum") = 0.0,
      py::arg("weight_decay") = 0.0, py::arg("eta") = 0.001, py::arg("nesterov") = false,
      py::arg("layer_adaptation") = true,
      "One LARS step (cc/kernels/lars.h) on `var` and its momentum, in place.");
}

}  // namespace python
}  // namespace kerasopt
