// Slot storage of the CPU apply ops (dense, sparse, multi-tensor): the slots
// of a variable of dtype T hold T, or float32 when T is 16-bit (bfloat16,
// float16) and the optimizer was built with slot_dtype="float32". The op reads
// the slots' dtype at run time, so no new op or attr is needed, and runs the
// driver with the slot storage type S (T or float; see cc/cpu/apply_dense.h).
// Only drivers that declare `kTakesWideSlots` (cpu::Dense, cpu::MultiDense and
// the sparse driver) are instantiated with float slots for a 16-bit T; the
// others refuse float32 slots with an error.
#pragma once

#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/bfloat16.h"
#include "tensorflow/core/framework/numeric_types.h"
#include "tensorflow/core/framework/types.h"

namespace kerasopt {
namespace tf {

template <typename T>
constexpr bool kIsHalfWidth =
    std::is_same_v<T, Eigen::half> || std::is_same_v<T, ::tensorflow::bfloat16>;

// Whether a driver policy runs with slots stored wider than the weight.
template <typename Driver, typename = void>
struct TakesWideSlots : std::false_type {};
template <typename Driver>
struct TakesWideSlots<Driver, std::void_t<decltype(Driver::kTakesWideSlots)>>
    : std::bool_constant<Driver::kTakesWideSlots> {};

// True when the slots of a T variable are float32: decided by the first
// slot's dtype (CheckSlotDtype then holds every slot to it).
template <typename T>
bool UsesWideSlots(::tensorflow::DataType first_slot_dtype) {
  return kIsHalfWidth<T> && first_slot_dtype == ::tensorflow::DT_FLOAT;
}

// Fails, naming the slot, unless its dtype is the storage the op runs with:
// T, or float32 when `wide` (and the driver takes wide slots).
template <typename T>
absl::Status CheckSlotDtype(::tensorflow::DataType got, bool wide, bool takes_wide,
                            const std::string& op, const std::string& variable,
                            const std::string& slot) {
  const ::tensorflow::DataType var_dtype = ::tensorflow::DataTypeToEnum<T>::value;
  if (wide && !takes_wide) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kerasopt: ", op, " takes slots of the variable's dtype only, but variable '",
        variable, "' (", ::tensorflow::DataTypeString(var_dtype), ") has float32 slot '",
        slot, "'"));
  }
  const ::tensorflow::DataType want = wide ? ::tensorflow::DT_FLOAT : var_dtype;
  if (got == want) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "kerasopt: variable '", variable, "' has dtype ", ::tensorflow::DataTypeString(var_dtype),
      " but its slot '", slot, "' has dtype ", ::tensorflow::DataTypeString(got),
      wide ? " (its other slots are float32)" : "",
      kIsHalfWidth<T> ? "; slots must all have the variable's dtype or all be float32"
                      : "; slots must have the variable's dtype"));
}

// Calls fn(S{}) with S the slot storage type: float when `wide` (16-bit T and
// a driver that takes wide slots), T otherwise. Only the types that can occur
// are instantiated.
template <typename T, typename Driver, typename Fn>
void WithSlotStorage(bool wide, Fn&& fn) {
  if constexpr (kIsHalfWidth<T> && TakesWideSlots<Driver>::value) {
    if (wide) {
      fn(float{});
      return;
    }
  }
  fn(T{});
}

}  // namespace tf
}  // namespace kerasopt
