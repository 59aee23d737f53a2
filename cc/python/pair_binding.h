// NumPy bindings of the two-array rules (cc/cpu/apply_pair.h): checks and
// dtype dispatch, single-threaded with the GIL released.
#pragma once

#include "cc/cpu/apply_pair.h"
#include "cc/python/binding.h"

namespace kerasopt {
namespace python {

// Runs Rule<ComputeType<T>> (built by `make(C{})`) over `first` and `second`,
// in place. Both must be C-contiguous with one dtype and shape; `first`, and
// `second` when the rule writes it, must be writeable.
template <template <typename> class Rule, typename Make>
void RunPair(py::array& first, const char* first_name, py::array& second,
             const char* second_name, Make make) {
  // CheckArrays treats its second array as read-only input, as here when the
  // rule does not write `second`.
  const Dtype dtype = CheckArrays({{first_name, &first}, {second_name, &second}});
  if (Rule<float>::kWritesSecond && !second.writeable()) {
    throw py::value_error(std::string("kerasopt: '") + second_name + "' must be writeable");
  }
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using C = ComputeType<T>;
    const Rule<C> rule = make(C{});
    T* a = static_cast<T*>(first.mutable_data());
    // A read-only `second` is never written (kWritesSecond is false).
    T* b = static_cast<T*>(const_cast<void*>(second.data()));
    const int64_t n = first.size();
    py::gil_scoped_release release;
    cpu::ApplyPair(rule, n, a, b, [](int64_t size, int64_t, auto&& fn) {
      if (size > 0) fn(0, size);
    });
  };
  switch (dtype) {
    case Dtype::kHalf: return run(Eigen::half{});
    case Dtype::kBfloat16: return run(Eigen::bfloat16{});
    case Dtype::kFloat: return run(float{});
    case Dtype::kDouble: return run(double{});
  }
}

}  // namespace python
}  // namespace kerasopt
