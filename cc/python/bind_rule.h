// The NumPy binding of a declared rule (cc/kernels/declaration.h), made from
// its declaration alone: kerasopt._kernels.<rule in lower case>, e.g.
//   adam(var, grad, momentum, velocity, velocity_hat=None, *, learning_rate,
//        beta_1, beta_2, epsilon, step, amsgrad=False)
// The slots come in the rule's order after var and grad, None (or left out)
// where not passed; a slot named like a scalar takes "_slot" (SGD's
// momentum_slot). Then, by keyword: learning_rate, the rule's scalars, step
// (rules with kUsesStep) and its flags. The same checks as the ops: slots as
// the flags say, the declaration's value checks, step >= 1.
//
// BindSparseRule<Decl> adds sparse_<rule>(var, values, indices, slots..., *,
// ..., num_threads=1): the sparse CPU driver with a chosen number of threads.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cc/cpu/apply_sparse.h"
#include "cc/cpu/driver_for.h"
#include "cc/kernels/declaration.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

namespace internal {

// The Python names of a declared rule's inputs, kept for its error messages.
struct RuleNames {
  std::string function;           // "adam", or "sparse_adam"
  std::vector<std::string> slots;  // argument names, in the rule's order
};

template <typename Decl>
RuleNames NamesOf(const char* rule, const char* prefix) {
  RuleNames names;
  names.function = prefix;
  for (const char* c = rule; *c; ++c) names.function += static_cast<char>(std::tolower(*c));
  for (const Slot& slot : Decl::kSlots) {
    std::string name = slot.name;
    for (const char* scalar : Decl::kScalars) {
      if (name == scalar) name += "_slot";
    }
    names.slots.push_back(name);
  }
  return names;
}

inline std::string SlotsText(const RuleNames& names) {
  std::string text;
  for (const std::string& slot : names.slots) text += (text.empty() ? "" : ", ") + slot;
  return text;
}

// The rule slots passed (nullptr where absent), checked against the flags, the
// declaration's value checks and step >= 1 (as the ops check them).
template <typename Decl, std::size_t kSlots, std::size_t kScalars, std::size_t kFlags>
std::array<py::array*, kSlots> CheckedSlots(const RuleNames& names,
                                            std::array<std::optional<py::array>*, kSlots> given,
                                            const std::array<double, kScalars>& scalars,
                                            const std::array<bool, kFlags>& flags,
                                            long long step) {
  std::array<py::array*, kSlots> slots{};
  bool optional_given = false;
  for (std::size_t k = 0; k < kSlots; ++k) {
    const Slot& slot = Decl::kSlots[k];
    const bool has = given[k]->has_value();
    if (slot.when == Slot::kAlways && !has) {
      throw py::value_error("kerasopt: " + names.function + " needs " + names.slots[k]);
    }
    if (slot.when >= 0 && has != flags[slot.when]) {
      throw py::value_error("kerasopt: " + names.function + ": " + names.slots[k] +
                            " must be given exactly when " + Decl::kFlags[slot.when].name +
                            "=True");
    }
    if (slot.when == Slot::kOptional) optional_given = has;
    slots[k] = has ? &**given[k] : nullptr;
  }
  if (const char* wrong = CheckValues<Decl>(optional_given, scalars.data(), flags.data())) {
    throw py::value_error("kerasopt: " + names.function + ": " + wrong + " (slots: " +
                          SlotsText(names) + ")");
  }
  if (Decl::kUsesStep) CheckStep(step);
  return slots;
}

// The rule for compute type C.
template <typename Decl, typename C, std::size_t kScalars, std::size_t kFlags>
typename Decl::template Rule<C> BuildRule(double learning_rate, long long step,
                                          long long num_elements,
                                          const std::array<double, kScalars>& scalars,
                                          const std::array<bool, kFlags>& flags) {
  return MakeRule<Decl, C>(SharedInputs{learning_rate, step, num_elements}, scalars.data(),
                           flags.data());
}

// Splits [0, n) into `num_threads` contiguous parts run on their own threads.
struct ThreadedFor {
  int num_threads;
  template <typename Fn>
  void operator()(int64_t n, int64_t /*cost*/, Fn&& fn) const {
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads, n));
    std::vector<std::thread> threads;
    for (int64_t p = 0; p < parts; ++p) {
      const int64_t begin = n * p / parts, end = n * (p + 1) / parts;
      threads.emplace_back([&fn, begin, end] { if (end > begin) fn(begin, end); });
    }
    for (auto& t : threads) t.join();
  }
};

template <typename Index>
using Indices = py::array_t<Index, py::array::c_style>;

// var and slots: [rows, row...]; values: [num_indices, row...]; indices: [num_indices].
template <typename Decl, typename Index, typename Make>
void RunSparse(py::array& var, py::array& values, const Indices<Index>& indices,
               const std::array<py::array*, kNumSlots<Decl>>& slots, int num_threads,
               Make make) {
  using RuleF = typename Decl::template Rule<float>;
  if (var.ndim() < 1) throw py::value_error("kerasopt: 'var' must have rows");
  if (indices.ndim() != 1 || values.ndim() != var.ndim() ||
      values.shape(0) != indices.shape(0) ||
      !std::equal(values.shape() + 1, values.shape() + values.ndim(), var.shape() + 1)) {
    throw py::value_error("kerasopt: 'values' has shape " + ShapeOf(values) +
                          ", 'indices' " + ShapeOf(indices) + ", 'var' " + ShapeOf(var));
  }
  if (num_threads < 1) throw py::value_error("kerasopt: num_threads must be >= 1");
  std::vector<std::pair<std::string, py::array*>> arrays = {{"var", &var}};
  for (std::size_t k = 0; k < slots.size(); ++k) {
    if (slots[k] != nullptr) arrays.push_back({"slot " + std::to_string(k), slots[k]});
  }
  const Dtype dtype = CheckArrays(arrays);
  if (DtypeOf(values) != dtype || !(values.flags() & py::array::c_style)) {
    throw py::type_error("kerasopt: 'values' must be C-contiguous with 'var''s dtype");
  }
  const int64_t num_rows = var.shape(0);
  const Index* idx = indices.data();
  const int64_t bad = cpu::FindBadIndex(idx, indices.size(), num_rows);
  if (bad >= 0) {
    throw py::index_error("kerasopt: index " + std::to_string(idx[bad]) +
                          " is out of range [0, " + std::to_string(num_rows) +
                          "); nothing was updated");
  }
  static_assert(RuleF::kNumSlots == kNumSlots<Decl>, "the declaration lists every slot");
  DispatchDtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeType<T>;
    std::array<T*, RuleF::kNumSlots> ptrs{};
    for (std::size_t k = 0; k < slots.size(); ++k) {
      ptrs[k] = slots[k] == nullptr ? nullptr : static_cast<T*>(slots[k]->mutable_data());
    }
    const auto rule = make(C{});
    const int64_t row_size = num_rows == 0 ? 0 : var.size() / num_rows;
    T* w = static_cast<T*>(var.mutable_data());
    const T* g = static_cast<const T*>(values.data());
    py::gil_scoped_release release;
    const cpu::RowGroups groups = cpu::GroupRows(idx, indices.size());
    cpu::ApplySparse(rule, row_size, w, ptrs, g, idx, groups, ThreadedFor{num_threads});
  });
}

template <std::size_t>
using SlotArg = std::optional<py::array>;
template <std::size_t>
using ScalarArg = double;
template <std::size_t>
using StepArg = long long;
template <std::size_t>
using FlagArg = bool;

// The step of a rule that reads it (else 1: SharedInputs wants one).
inline long long StepOf() { return 1; }
inline long long StepOf(long long step) { return step; }
inline py::arg StepName(std::size_t) { return py::arg("step"); }

// One instance per declared rule: the packs K, I, S, J run over its slots, its
// scalars, its step (one or none) and its flags, so the bound functions take
// exactly the rule's arguments, with their names.
template <typename Decl, typename SlotSeq = std::make_index_sequence<kNumSlots<Decl>>,
          typename ScalarSeq = std::make_index_sequence<kNumScalars<Decl>>,
          typename StepSeq = std::make_index_sequence<Decl::kUsesStep ? 1 : 0>,
          typename FlagSeq = std::make_index_sequence<kNumFlags<Decl>>>
struct RuleBinding;

template <typename Decl, std::size_t... K, std::size_t... I, std::size_t... S, std::size_t... J>
struct RuleBinding<Decl, std::index_sequence<K...>, std::index_sequence<I...>,
                   std::index_sequence<S...>, std::index_sequence<J...>> {
  static constexpr std::size_t kSlots = sizeof...(K);
  using Given = std::array<std::optional<py::array>*, kSlots>;
  using ScalarValues = std::array<double, sizeof...(I)>;
  using FlagValues = std::array<bool, sizeof...(J)>;
  using Driver = typename cpu::DriverFor<Decl::kDriver>::type;

  static void Dense(const RuleNames& names, py::array& var, py::array& grad, Given given,
                    double learning_rate, const ScalarValues& scalars, long long step,
                    const FlagValues& flags) {
    const auto slots = CheckedSlots<Decl>(names, given, scalars, flags, step);
    Run<Decl::template Rule, Driver>(var, grad, slots, [&](auto c) {
      return BuildRule<Decl, decltype(c)>(learning_rate, step, var.size(), scalars, flags);
    });
  }

  template <typename Index>
  static void Sparse(const RuleNames& names, py::array& var, py::array& values,
                     const Indices<Index>& indices, Given given, double learning_rate,
                     const ScalarValues& scalars, long long step, const FlagValues& flags,
                     int num_threads) {
    const auto slots = CheckedSlots<Decl>(names, given, scalars, flags, step);
    RunSparse<Decl, Index>(var, values, indices, slots, num_threads, [&](auto c) {
      // The rule sees the gradient's size, as the op does (AdamW's rounding).
      return BuildRule<Decl, decltype(c)>(learning_rate, step, values.size(), scalars, flags);
    });
  }

  // The slot arguments: those that may be absent default to None (and come last).
  template <std::size_t k>
  static auto SlotArgument(const RuleNames& names) {
    if constexpr (Decl::kSlots[k].when == Slot::kAlways) {
      return py::arg(names.slots[k].c_str());
    } else {
      return py::arg(names.slots[k].c_str()) = py::none();
    }
  }
  // The scalar arguments: those the declaration gives a default have it.
  template <std::size_t i>
  static auto ScalarArgument() {
    constexpr int k = ScalarDefaultIndex<Decl>(Decl::kScalars[i]);
    if constexpr (k < 0) {
      return py::arg(Decl::kScalars[i]);
    } else {
      return py::arg(Decl::kScalars[i]) = Decl::kScalarDefaults[k].value;
    }
  }
  static constexpr bool AbsentSlotsLast() {
    bool may_be_absent = false;
    for (const Slot& slot : Decl::kSlots) {
      if (slot.when != Slot::kAlways) {
        may_be_absent = true;
      } else if (may_be_absent) {
        return false;
      }
    }
    return true;
  }

  static void Bind(py::module_& m, const char* rule) {
    static_assert(AbsentSlotsLast(), "slots that may be absent come after the others");
    const RuleNames names = NamesOf<Decl>(rule, "");
    const std::string doc = "One " + std::string(rule) + " step (its declaration in " +
                            "cc/kernels) on `var` and its slots, in place.";
    m.def(
        names.function.c_str(),
        [names](py::array var, py::array grad, SlotArg<K>... slots, double learning_rate,
                ScalarArg<I>... scalars, StepArg<S>... step, FlagArg<J>... flags) {
          Dense(names, var, grad, {&slots...}, learning_rate, {scalars...}, StepOf(step...),
                {flags...});
        },
        py::arg("var"), py::arg("grad"), SlotArgument<K>(names)..., py::kw_only(),
        py::arg("learning_rate"), ScalarArgument<I>()..., StepName(S)...,
        (py::arg(Decl::kFlags[J].name) = Decl::kFlags[J].default_value)..., doc.c_str());
  }

  // Both index types (py::array_t converts nothing: forcecast is off, so other
  // index dtypes fall through to a TypeError).
  template <typename Index>
  static void BindSparse(py::module_& m, const char* rule) {
    static_assert(Decl::kSparse && Decl::kDriver == kerasopt::Driver::kElementwise,
                  "a rule with a sparse op");
    const RuleNames names = NamesOf<Decl>(rule, "sparse_");
    const std::string doc = std::string(rule) +
                            " on the rows named by `indices` (duplicates summed), in place.";
    m.def(
        names.function.c_str(),
        [names](py::array var, py::array values, Indices<Index> indices, SlotArg<K>... slots,
                double learning_rate, ScalarArg<I>... scalars, StepArg<S>... step,
                FlagArg<J>... flags, int num_threads) {
          Sparse<Index>(names, var, values, indices, {&slots...}, learning_rate, {scalars...},
                        StepOf(step...), {flags...}, num_threads);
        },
        py::arg("var"), py::arg("values"), py::arg("indices").noconvert(),
        SlotArgument<K>(names)..., py::kw_only(), py::arg("learning_rate"),
        ScalarArgument<I>()..., StepName(S)...,
        (py::arg(Decl::kFlags[J].name) = Decl::kFlags[J].default_value)...,
        py::arg("num_threads") = 1, doc.c_str());
  }
};

}  // namespace internal

// Binds kerasopt._kernels.<rule in lower case>.
// (Not the preconditioned rules: their slots are matrices no CPU driver here runs.)
template <typename Decl>
void BindRule(py::module_& m, const char* rule) {
  if constexpr (Decl::kDriver != Driver::kPreconditioned) {
    internal::RuleBinding<Decl>::Bind(m, rule);
  }
}

// Binds kerasopt._kernels.sparse_<rule in lower case>.
template <typename Decl>
void BindSparseRule(py::module_& m, const char* rule) {
  internal::RuleBinding<Decl>::template BindSparse<int32_t>(m, rule);
  internal::RuleBinding<Decl>::template BindSparse<int64_t>(m, rule);
}

}  // namespace python
}  // namespace kerasopt
