// kerasopt._kernels.adadelta: cc/kernels/adadelta.h on NumPy arrays.
#include "cc/kernels/adadelta.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindAdadelta(py::module_& m) {
  m.def(
      "adadelta",
      [](py::array var, py::array grad, py::array accumulated_grad,
         py::array accumulated_delta_var, double learning_rate, double rho,
         double epsilon) {
        Run<AdadeltaRule>(var, grad, {&accumulated_grad, &accumulated_delta_var},
                          [&](auto c) {
                            return AdadeltaRule<decltype(c)>::Make(learning_rate, rho,
                                                                   epsilon);
                          });
      },
      py::arg("var"), py::arg("grad"), py::arg("accumulated_grad"),
      py::arg("accumulated_delta_var"), py::kw_only(), py::arg("learning_rate"),
      py::arg("rho"), py::arg("epsilon"),
      "One Adadelta step (cc/kernels/adadelta.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
