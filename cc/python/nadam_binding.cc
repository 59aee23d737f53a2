// kerasopt._kernels.nadam: cc/kernels/nadam.h on NumPy arrays.
#include "cc/kernels/nadam.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

void BindNadam(py::module_& m) {
  m.def(
      "nadam",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         double learning_rate, double beta_1, double beta_2, double epsilon,
         double u_product, long long step) {
        CheckStep(step);
        Run<NadamRule>(var, grad, {&momentum, &velocity}, [&](auto c) {
          return NadamRule<decltype(c)>::Make(learning_rate, beta_1, beta_2,
                                              epsilon, u_product, step);
        });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"),
      py::kw_only(), py::arg("learning_rate"), py::arg("beta_1"),
      py::arg("beta_2"), py::arg("epsilon"), py::arg("u_product"), py::arg("step"),
      "One Nadam step (cc/kernels/nadam.h) on `var` and its slots, in place. "
      "`u_product` is the product of the momentum schedule up to and including "
      "`step`; the caller keeps it across steps.");
}

}  // namespace python
}  // namespace kerasopt
