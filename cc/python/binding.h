// What every NumPy binding of an update rule shares: dtype dispatch, argument
// checks, and running the rule with a CPU driver (single-threaded, GIL
// released). The declared rules are bound by bind_rule.h.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "Eigen/Core"
#include "cc/cpu/apply_dense.h"

namespace kerasopt {
namespace python {

namespace py = pybind11;

enum class Dtype { kHalf, kBfloat16, kFloat, kDouble };

inline Dtype DtypeOf(const py::array& a) {
  const std::string name = py::str(a.dtype().attr("name"));
  if (!a.dtype().attr("isnative").cast<bool>()) {
    throw py::type_error("kerasopt: arrays must be in native byte order, got " +
                         std::string(py::str(a.dtype())));
  }
  if (name == "float16") return Dtype::kHalf;
  if (name == "bfloat16") return Dtype::kBfloat16;
  if (name == "float32") return Dtype::kFloat;
  if (name == "float64") return Dtype::kDouble;
  throw py::type_error("kerasopt: unsupported dtype " + name +
                       " (float16, bfloat16, float32 or float64)");
}

inline std::string ShapeOf(const py::array& a) {
  return py::str(py::tuple(a.attr("shape")));
}

// Checks that the arrays (var first, grad second, then slots) are C-contiguous,
// share var's dtype and shape, and that all but grad are writeable.
inline Dtype CheckArrays(const std::vector<std::pair<std::string, py::array*>>& arrays) {
  const py::array& var = *arrays[0].second;
  const Dtype dtype = DtypeOf(var);
  for (size_t i = 0; i < arrays.size(); ++i) {
    const auto& [name, a] = arrays[i];
    if (!(a->flags() & py::array::c_style)) {
      throw py::value_error("kerasopt: '" + name + "' must be C-contiguous");
    }
    if (DtypeOf(*a) != dtype) {
      throw py::type_error("kerasopt: '" + name + "' has dtype " +
                           std::string(py::str(a->dtype())) + ", 'var' has " +
                           std::string(py::str(var.dtype())));
    }
    if (a->ndim() != var.ndim() ||
        !std::equal(a->shape(), a->shape() + a->ndim(), var.shape())) {
      throw py::value_error("kerasopt: '" + name + "' has shape " + ShapeOf(*a) +
                            ", 'var' has " + ShapeOf(var));
    }
    if (i != 1 && !a->writeable()) {
      throw py::value_error("kerasopt: '" + name + "' must be writeable");
    }
  }
  return dtype;
}

// A per-variable slot: a writeable 0-d array of var's dtype.
inline void CheckLayerSlot(const std::string& name, py::array& a, Dtype dtype) {
  if (DtypeOf(a) != dtype) {
    throw py::type_error("kerasopt: '" + name + "' has dtype " +
                         std::string(py::str(a.dtype())) + ", unlike 'var'");
  }
  if (a.ndim() != 0) {
    throw py::value_error("kerasopt: '" + name +
                          "' holds one value per variable and must have shape (), got " +
                          ShapeOf(a));
  }
  if (!a.writeable()) throw py::value_error("kerasopt: '" + name + "' must be writeable");
}

// Step counts from 1 (iterations + 1): bias corrections divide by 1 - beta^step.
inline void CheckStep(long long step) {
  if (step < 1) {
    throw py::value_error("kerasopt: step counts from 1 (iterations + 1), got " +
                          std::to_string(step));
  }
}

// Calls fn(T{}) with T the storage type of `dtype`.
template <typename Fn>
void DispatchDtype(Dtype dtype, Fn&& fn) {
  switch (dtype) {
    case Dtype::kHalf: return fn(Eigen::half{});
    case Dtype::kBfloat16: return fn(Eigen::bfloat16{});
    case Dtype::kFloat: return fn(float{});
    case Dtype::kDouble: return fn(double{});
  }
}

// Runs Rule<ComputeType<T>> over the arrays in place with the CPU driver
// `Driver` (cpu::Dense, or cpu::WithNorms from apply_with_norms.h). `slots`
// holds one entry per rule slot, nullptr where absent; `make(C{})` builds the
// rule for compute type C.
template <template <typename> class Rule, typename Driver = cpu::Dense, typename Make>
void Run(py::array& var, py::array& grad,
         const std::array<py::array*, Rule<float>::kNumSlots>& slots, Make make) {
  // The rule's trailing layer slots hold one value per variable (shape ()).
  constexpr size_t kFirstLayerSlot =
      Rule<float>::kNumSlots - LayerSlotsOf<Rule<float>>::value;
  std::vector<std::pair<std::string, py::array*>> arrays = {{"var", &var}, {"grad", &grad}};
  for (size_t k = 0; k < kFirstLayerSlot; ++k) {
    if (slots[k] != nullptr) arrays.push_back({"slot " + std::to_string(k), slots[k]});
  }
  const Dtype dtype = CheckArrays(arrays);
  for (size_t k = kFirstLayerSlot; k < slots.size(); ++k) {
    if (slots[k] != nullptr) CheckLayerSlot("slot " + std::to_string(k), *slots[k], dtype);
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeType<T>;
    std::array<T*, Rule<C>::kNumSlots> ptrs{};
    for (size_t k = 0; k < slots.size(); ++k) {
      ptrs[k] = slots[k] == nullptr ? nullptr : static_cast<T*>(slots[k]->mutable_data());
    }
    const Rule<C> rule = make(C{});
    T* w = static_cast<T*>(var.mutable_data());
    const T* g = static_cast<const T*>(grad.data());
    const int64_t n = var.size();
    py::gil_scoped_release release;
    Driver::Apply(rule, n, w, ptrs, g, [](int64_t size, int64_t, auto&& fn) {
      if (size > 0) fn(0, size);
    });
  };
  DispatchDtype(dtype, run);
}

// The bindings kernels_module.cc makes: every declared rule adds its own
// (rule_binding.cc.in, through AddRuleBinding); the others are below.
using Binding = void (*)(py::module_&);
inline std::vector<Binding>& RuleBindings() {
  static std::vector<Binding> bindings;
  return bindings;
}
inline bool AddRuleBinding(Binding bind) {
  RuleBindings().push_back(bind);
  return true;
}

void BindSparse(py::module_& m);  // sparse_binding.cc: the sparse driver
void BindMatrixInverseRoot(py::module_& m);
void BindLookahead(py::module_& m);
void BindIterateAverage(py::module_& m);

}  // namespace python
}  // namespace kerasopt
