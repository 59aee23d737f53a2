// Shared vocabulary of the update rules in this directory.
//
// Each rule is a small struct with a per-element `operator()` that updates one
// weight and its slots in registers. Rules know nothing about memory layout,
// threads or TensorFlow: drivers in cc/cpu (and cc/cuda) load elements, call
// the rule, and store the results. That keeps every algorithm's math in one
// header, shared by the CPU, CUDA and NumPy paths.
#pragma once

#include <cmath>
#include <type_traits>

#if defined(__CUDACC__)
#define KERASOPT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define KERASOPT_HOST_DEVICE inline
#endif

namespace kerasopt {

// The type a rule computes in for storage type T: 16-bit floats are widened to
// float, float stays float (so float32 results match Keras bit for bit), and
// double stays double.
template <typename T>
struct ComputeTypeFor {
  using type = float;
};
template <>
struct ComputeTypeFor<double> {
  using type = double;
};
template <typename T>
using ComputeType = typename ComputeTypeFor<T>::type;

// How many of a rule's slots (the trailing ones) hold one value per variable
// (shape ()) rather than one per element: Rule::kNumLayerSlots, 0 if absent.
template <typename Rule, typename = void>
struct LayerSlotsOf {
  static constexpr int value = 0;
};
template <typename Rule>
struct LayerSlotsOf<Rule, std::void_t<decltype(Rule::kNumLayerSlots)>> {
  static constexpr int value = Rule::kNumLayerSlots;
};

}  // namespace kerasopt
