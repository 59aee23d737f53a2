// The CPU driver of each kind of rule (cc/kernels/declaration.h's Driver):
// DriverFor<Decl::kDriver>::type is the policy the ops and the NumPy binding
// run the declared rule with.
#pragma once

#include "cc/cpu/apply_after_norms.h"
#include "cc/cpu/apply_dense.h"
#include "cc/cpu/apply_layerwise.h"
#include "cc/cpu/apply_with_norms.h"
#include "cc/kernels/declaration.h"

namespace kerasopt {
namespace cpu {

template <Driver D>
struct DriverFor;
template <>
struct DriverFor<Driver::kElementwise> {
  using type = Dense;
};
template <>
struct DriverFor<Driver::kWithNorms> {
  using type = WithNorms;
};
template <>
struct DriverFor<Driver::kAfterNorms> {
  using type = AfterNorms;
};
template <>
struct DriverFor<Driver::kLayerwise> {
  using type = Layerwise;
};

}  // namespace cpu
}  // namespace kerasopt
