// kerasopt._kernels.sparse_<algo>: the sparse driver (cc/cpu/apply_sparse.h)
// on NumPy arrays, with a chosen number of threads, so tests can check that
// the result does not depend on how the rows are split. Bound for one exact
// rule (Adagrad), FTRL and one lazy rule (Adam): the driver is the same code
// for every rule, and the TensorFlow ops cover the rest.
#include <array>
#include <string>
#include <thread>
#include <vector>

#include "cc/cpu/apply_sparse.h"
#include "cc/kernels/adagrad.h"
#include "cc/kernels/adam.h"
#include "cc/kernels/ftrl.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {
namespace {

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
void CheckIndices(const py::array_t<Index>& indices, int64_t num_rows) {
  const Index* data = indices.data();
  const int64_t bad = cpu::FindBadIndex(data, indices.size(), num_rows);
  if (bad >= 0) {
    throw py::index_error("kerasopt: index " + std::to_string(data[bad]) +
                          " is out of range [0, " + std::to_string(num_rows) +
                          "); nothing was updated");
  }
}

// var and slots: [rows, row...]; values: [num_indices, row...]; indices: [num_indices].
template <template <typename> class Rule, typename Index, typename Make>
void RunSparse(py::array& var, py::array& values, const py::array_t<Index>& indices,
               const std::array<py::array*, Rule<float>::kNumSlots>& slots,
               int num_threads, Make make) {
  if (var.ndim() < 1) throw py::value_error("kerasopt: 'var' must have rows");
  if (indices.ndim() != 1 || values.ndim() != var.ndim() ||
      values.shape(0) != indices.shape(0) ||
      !std::equal(values.shape() + 1, values.shape() + values.ndim(), var.shape() + 1)) {
    throw py::value_error("kerasopt: 'values' has shape " + ShapeOf(values) +
                          ", 'indices' " + ShapeOf(indices) + ", 'var' " + ShapeOf(var));
  }
  if (num_threads < 1) throw py::value_error("kerasopt: num_threads must be >= 1");
  std::vector<std::pair<std::string, py::array*>> arrays = {{"var", &var}};
  for (size_t k = 0; k < slots.size(); ++k) {
    if (slots[k] != nullptr) arrays.push_back({"slot " + std::to_string(k), slots[k]});
  }
  const Dtype dtype = CheckArrays(arrays);
  if (DtypeOf(values) != dtype || !(values.flags() & py::array::c_style)) {
    throw py::type_error("kerasopt: 'values' must be C-contiguous with 'var''s dtype");
  }
  const int64_t num_rows = var.shape(0);
  CheckIndices(indices, num_rows);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeType<T>;
    std::array<T*, Rule<C>::kNumSlots> ptrs{};
    for (size_t k = 0; k < slots.size(); ++k) {
      ptrs[k] = slots[k] == nullptr ? nullptr : static_cast<T*>(slots[k]->mutable_data());
    }
    const Rule<C> rule = make(C{});
    const Index* idx = indices.data();
    const int64_t row_size = num_rows == 0 ? 0 : var.size() / num_rows;
    T* w = static_cast<T*>(var.mutable_data());
    const T* g = static_cast<const T*>(values.data());
    py::gil_scoped_release release;
    const cpu::RowGroups groups = cpu::GroupRows(idx, indices.size());
    cpu::ApplySparse(rule, row_size, w, ptrs, g, idx, groups, ThreadedFor{num_threads});
  };
  switch (dtype) {
    case Dtype::kHalf: return run(Eigen::half{});
    case Dtype::kBfloat16: return run(Eigen::bfloat16{});
    case Dtype::kFloat: return run(float{});
    case Dtype::kDouble: return run(double{});
  }
}

// Binds `name` for int32 and int64 indices (py::array_t converts nothing:
// forcecast is off, so other index dtypes fall through to a TypeError).
template <typename Fn32, typename Fn64, typename... Args>
void DefBothIndexTypes(py::module_& m, const char* name, Fn32 fn32, Fn64 fn64,
                       const char* doc, Args... args) {
  m.def(name, fn32, args..., doc);
  m.def(name, fn64, args..., doc);
}

template <typename Index>
using Indices = py::array_t<Index, py::array::c_style>;

}  // namespace

void BindSparse(py::module_& m) {
  auto adagrad = [](auto index_tag) {
    using Index = decltype(index_tag);
    return [](py::array var, py::array values, Indices<Index> indices,
              py::array accumulator, double learning_rate, double epsilon,
              int num_threads) {
      RunSparse<AdagradRule, Index>(var, values, indices, {&accumulator}, num_threads,
                                    [&](auto c) {
        return AdagradRule<decltype(c)>::Make(learning_rate, epsilon);
      });
    };
  };
  DefBothIndexTypes(m, "sparse_adagrad", adagrad(int32_t{}), adagrad(int64_t{}),
                    "Adagrad on the rows named by `indices` (duplicates summed), in place.",
                    py::arg("var"), py::arg("values"), py::arg("indices").noconvert(),
                    py::arg("accumulator"), py::kw_only(), py::arg("learning_rate"),
                    py::arg("epsilon"), py::arg("num_threads") = 1);

  auto ftrl = [](auto index_tag) {
    using Index = decltype(index_tag);
    return [](py::array var, py::array values, Indices<Index> indices,
              py::array accumulator, py::array linear, double learning_rate,
              double learning_rate_power, double l1, double l2, double l2_shrinkage,
              double beta, int num_threads) {
      RunSparse<FtrlRule, Index>(var, values, indices, {&accumulator, &linear},
                                 num_threads, [&](auto c) {
        return FtrlRule<decltype(c)>::Make(learning_rate, learning_rate_power, l1, l2,
                                           l2_shrinkage, beta);
      });
    };
  };
  DefBothIndexTypes(m, "sparse_ftrl", ftrl(int32_t{}), ftrl(int64_t{}),
                    "FTRL-Proximal on the rows named by `indices` (duplicates summed), in place.",
                    py::arg("var"), py::arg("values"), py::arg("indices").noconvert(),
                    py::arg("accumulator"), py::arg("linear"), py::kw_only(),
                    py::arg("learning_rate"), py::arg("learning_rate_power"), py::arg("l1"),
                    py::arg("l2"), py::arg("l2_shrinkage"), py::arg("beta"),
                    py::arg("num_threads") = 1);

  auto adam = [](auto index_tag) {
    using Index = decltype(index_tag);
    return [](py::array var, py::array values, Indices<Index> indices, py::array m,
              py::array v, double learning_rate, double beta_1, double beta_2,
              double epsilon, long long step, int num_threads) {
      CheckStep(step);
      RunSparse<AdamRule, Index>(var, values, indices, {&m, &v, nullptr}, num_threads,
                                 [&](auto c) {
        return AdamRule<decltype(c)>::Make(learning_rate, beta_1, beta_2, epsilon, step,
                                           /*amsgrad=*/false);
      });
    };
  };
  DefBothIndexTypes(m, "sparse_adam", adam(int32_t{}), adam(int64_t{}),
                    "Lazy Adam on the rows named by `indices` (duplicates summed), in place.",
                    py::arg("var"), py::arg("values"), py::arg("indices").noconvert(),
                    py::arg("m"), py::arg("v"), py::kw_only(), py::arg("learning_rate"),
                    py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
                    py::arg("step"), py::arg("num_threads") = 1);
}

}  // namespace python
}  // namespace kerasopt
