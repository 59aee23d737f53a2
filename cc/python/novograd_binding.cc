// kerasopt._kernels.novograd: cc/kernels/novograd.h on NumPy arrays, with the
// layer-wise driver of cc/cpu/apply_layerwise.h.
#include "cc/cpu/apply_layerwise.h"
#include "cc/kernels/novograd.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindNovoGrad(py::module_& m) {
  m.def(
      "novograd",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         double learning_rate, double beta_1, double beta_2, double epsilon,
         double weight_decay, long long step, bool grad_averaging) {
        CheckStep(step);
        Run<NovoGradRule, cpu::Layerwise>(var, grad, {&momentum, &velocity}, [&](auto c) {
          return NovoGradRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon,
                                                 weight_decay, step, grad_averaging);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"), py::kw_only(),
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
      py::arg("weight_decay"), py::arg("step"), py::arg("grad_averaging") = false,
      "One NovoGrad step (cc/kernels/novograd.h) on `var`, its momentum (var's shape) "
      "and its velocity (shape ()), in place.");
}

}  // namespace python
}  // namespace kerasopt
