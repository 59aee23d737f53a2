// kerasopt._kernels.adabelief: cc/kernels/adabelief.h on NumPy arrays.
#include "cc/kernels/adabelief.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdaBelief(py::module_& m) {
  m.def(
      "adabelief",
      [](py::array var, py::array grad, py::array momentum, py::array belief,
         double learning_rate, double beta_1, double beta_2, double epsilon, long long step,
         bool amsgrad) {
        CheckStep(step);
        Run<AdaBeliefRule>(var, grad, {&momentum, &belief}, [&](auto c) {
          return AdaBeliefRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon,
                                                  step, amsgrad);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("belief"), py::kw_only(),
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
      py::arg("step"), py::arg("amsgrad") = false,
      "One AdaBelief step (cc/kernels/adabelief.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
