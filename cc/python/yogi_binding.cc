// kerasopt._kernels.yogi: cc/kernels/yogi.h on NumPy arrays.
#include "cc/kernels/yogi.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindYogi(py::module_& m) {
  m.def(
      "yogi",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         double learning_rate, double beta_1, double beta_2, double epsilon) {
        Run<YogiRule>(var, grad, {&momentum, &velocity}, [&](auto c) {
          return YogiRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"), py::kw_only(),
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
      "One Yogi step (cc/kernels/yogi.h) on `var` and its slots, in place.");
}

}  // namespace python
}  // namespace kerasopt
