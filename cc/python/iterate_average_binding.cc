// kerasopt._kernels.update_iterate_average: cc/kernels/iterate_average.h on
// NumPy arrays.
#include "cc/kernels/iterate_average.h"
#include "cc/python/pair_binding.h"

namespace kerasopt {
namespace python {

void BindIterateAverage(py::module_& m) {
  m.def(
      "update_iterate_average",
      [](py::array average, py::array var, long long count) {
        if (count < 0) {
          throw py::value_error("kerasopt: count must be >= 0, got " + std::to_string(count));
        }
        RunPair<IterateAverageRule>(average, "average", var, "var", [&](auto c) {
          return IterateAverageRule<decltype(c)>::Make(count);
        });
      },
      py::arg("average"), py::arg("var"), py::kw_only(), py::arg("count"),
      "Running mean (cc/kernels/iterate_average.h): average += (var - average) / "
      "(count + 1), average = var at count 0; in place.");
}

}  // namespace python
}  // namespace kerasopt
