// kerasopt._kernels.lamb: cc/kernels/lamb.h on NumPy arrays, with the
// two-pass driver of cc/cpu/apply_with_norms.h.
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/lamb.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindLamb(py::module_& m) {
  m.def(
      "lamb",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         double learning_rate, double beta_1, double beta_2, double epsilon,
         long long step) {
        CheckStep(step);
        Run<LambRule, cpu::WithNorms>(var, grad, {&momentum, &velocity}, [&](auto c) {
          return LambRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon, step);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"),
      py::kw_only(), py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"),
      py::arg("epsilon"), py::arg("step"),
      "One LAMB step (cc/kernels/lamb.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
