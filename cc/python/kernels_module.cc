// kerasopt._kernels: the update rules of cc/kernels run by the CPU driver on
// NumPy arrays, in place. No TensorFlow involved: tests compare these against
// the float64 references, and tools can step optimizers on plain arrays.
//
// Arrays must be C-contiguous, writeable where updated, and share one dtype:
// float16, bfloat16 (ml_dtypes), float32 or float64.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "cc/cpu/apply_dense.h"
#include "cc/kernels/adam.h"
#include "cc/kernels/sgd.h"

namespace py = pybind11;

namespace kerasopt {
namespace {

enum class Dtype { kHalf, kBfloat16, kFloat, kDouble };

Dtype DtypeOf(const py::array& a) {
  const std::string name = py::str(a.dtype().attr("name"));
  if (name == "float16") return Dtype::kHalf;
  if (name == "bfloat16") return Dtype::kBfloat16;
  if (name == "float32") return Dtype::kFloat;
  if (name == "float64") return Dtype::kDouble;
  throw py::type_error("kerasopt: unsupported dtype " + name +
                       " (float16, bfloat16, float32 or float64)");
}

// Checks that `arrays` (weight first, then gradient, then slots) agree, and
// returns their dtype.
Dtype CheckArrays(const std::vector<std::pair<const char*, py::array*>>& arrays) {
  const py::array& var = *arrays[0].second;
  const Dtype dtype = DtypeOf(var);
  for (const auto& [name, a] : arrays) {
    if (!(a->flags() & py::array::c_style)) {
      throw py::value_error(std::string("kerasopt: '") + name + "' must be C-contiguous");
    }
    if (DtypeOf(*a) != dtype) {
      throw py::type_error(std::string("kerasopt: '") + name + "' has dtype " +
                           std::string(py::str(a->dtype())) + ", 'var' has " +
                           std::string(py::str(var.dtype())));
    }
    if (a->size() != var.size() || a->ndim() != var.ndim() ||
        !std::equal(a->shape(), a->shape() + a->ndim(), var.shape())) {
      throw py::value_error(std::string("kerasopt: '") + name + "' has shape " +
                            std::string(py::str(py::tuple(a->attr("shape")))) +
                            ", 'var' has " +
                            std::string(py::str(py::tuple(var.attr("shape")))));
    }
    if (a != arrays[1].second && !a->writeable()) {
      throw py::value_error(std::string("kerasopt: '") + name + "' must be writeable");
    }
  }
  return dtype;
}

template <typename T>
T* Data(py::array* a) {
  return a == nullptr ? nullptr : static_cast<T*>(a->mutable_data());
}

auto SerialFor = [](int64_t n, int64_t /*cost*/, auto&& fn) {
  if (n > 0) fn(0, n);
};

// Runs `Rule<ComputeType<T>>` (built by `make`) over the arrays.
template <template <typename> class Rule, typename Make>
void Run(py::array& var, py::array& grad,
         const std::array<py::array*, Rule<float>::kNumSlots>& slots, Make make) {
  std::vector<std::pair<const char*, py::array*>> arrays = {{"var", &var}, {"grad", &grad}};
  static const char* kSlotNames[] = {"slot 0", "slot 1", "slot 2", "slot 3"};
  for (size_t k = 0; k < slots.size(); ++k) {
    if (slots[k] != nullptr) arrays.push_back({kSlotNames[k], slots[k]});
  }
  const Dtype dtype = CheckArrays(arrays);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeType<T>;
    std::array<T*, Rule<C>::kNumSlots> ptrs{};
    for (size_t k = 0; k < slots.size(); ++k) ptrs[k] = Data<T>(slots[k]);
    const Rule<C> rule = make(C{});
    py::gil_scoped_release release;
    cpu::ApplyDense(rule, var.size(), Data<T>(&var), ptrs,
                    static_cast<const T*>(grad.data()), SerialFor);
  };
  switch (dtype) {
    case Dtype::kHalf: return run(Eigen::half{});
    case Dtype::kBfloat16: return run(Eigen::bfloat16{});
    case Dtype::kFloat: return run(float{});
    case Dtype::kDouble: return run(double{});
  }
}

py::array* OrNull(std::optional<py::array>& a) { return a ? &*a : nullptr; }

}  // namespace
}  // namespace kerasopt

PYBIND11_MODULE(_kernels, m) {
  using namespace kerasopt;
  m.doc() = "kerasopt's C++ update rules on NumPy arrays (in place).";

  m.def(
      "adam",
      [](py::array var, py::array grad, py::array momentum, py::array velocity,
         std::optional<py::array> velocity_hat, double learning_rate,
         double beta_1, double beta_2, double epsilon, long long step,
         bool amsgrad) {
        if (amsgrad && !velocity_hat) {
          throw py::value_error("kerasopt: amsgrad=True needs velocity_hat");
        }
        Run<AdamRule>(var, grad, {&momentum, &velocity, OrNull(velocity_hat)},
                      [&](auto c) {
                        return AdamRule<decltype(c)>::Make(learning_rate, beta_1, beta_2,
                                                           epsilon, step, amsgrad);
                      });
      },
      py::arg("var"), py::arg("grad"), py::arg("momentum"), py::arg("velocity"),
      py::arg("velocity_hat") = py::none(), py::kw_only(), py::arg("learning_rate"),
      py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("step"),
      py::arg("amsgrad") = false,
      "One Adam step (cc/kernels/adam.h) on `var` and its slots, in place.");

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
