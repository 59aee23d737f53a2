// kerasopt._kernels.lookahead_sync: cc/kernels/lookahead.h on NumPy arrays.
#include "cc/kernels/lookahead.h"
#include "cc/python/pair_binding.h"

namespace kerasopt {
namespace python {

void BindLookahead(py::module_& m) {
  m.def(
      "lookahead_sync",
      [](py::array slow, py::array fast, double slow_step_size) {
        RunPair<LookaheadSyncRule>(slow, "slow", fast, "fast", [&](auto c) {
          return LookaheadSyncRule<decltype(c)>::Make(slow_step_size);
        });
      },
      py::arg("slow"), py::arg("fast"), py::kw_only(), py::arg("slow_step_size"),
      "Lookahead's sync (cc/kernels/lookahead.h): slow += a * (fast - slow); "
      "fast = slow; in place.");
}

}  // namespace python
}  // namespace kerasopt
