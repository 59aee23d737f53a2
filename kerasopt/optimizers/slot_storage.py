"""``slot_dtype``: float32 slots for bfloat16/float16 variables.

By default every slot takes its variable's dtype, as in Keras. With
``slot_dtype="float32"`` the slots of 16-bit variables are float32 instead
(float32 and float64 variables are unchanged). The update is then the one
computed in float32 throughout with only the weight rounded to 16 bits when
stored: the slots keep every bit a float32 copy of them would hold. The CPU
kernels read the slots' dtype at run time (cc/tf/slot_storage.h); the
fallback reads and writes slots in their own dtype already; GPU variables with
float32 slots take the fallback (the CUDA kernels take slots of the variable's
dtype only).

This is for variables that are themselves 16-bit. Keras's mixed precision
policies ("mixed_bfloat16", "mixed_float16") keep float32 variables, whose
slots are float32 anyway.
"""

from __future__ import annotations

import keras

# The values `slot_dtype` accepts.
CHOICES = (None, "float32")

_SIXTEEN_BIT = ("bfloat16", "float16")


def check_slot_dtype(slot_dtype, optimizer):
    """Validates the constructor argument; returns it (None or "float32")."""
    if slot_dtype is not None:
        try:
            slot_dtype = keras.backend.standardize_dtype(slot_dtype)
        except (TypeError, ValueError):
            pass  # reported below with the value as given
    if slot_dtype not in CHOICES:
        raise ValueError(f"`slot_dtype` must be None or 'float32', got {slot_dtype!r}")
    if slot_dtype is not None and not type(optimizer).supports_slot_dtype:
        raise ValueError(
            f"{type(optimizer).__name__} does not support `slot_dtype`: its kernel "
            "takes slots of the variable's dtype only (see docs/slot-dtype.md)")
    return slot_dtype


def slot_dtype_for(slot_dtype, variable_dtype) -> str:
    """The dtype of a slot of a variable of `variable_dtype`."""
    variable_dtype = keras.backend.standardize_dtype(variable_dtype)
    if slot_dtype is not None and variable_dtype in _SIXTEEN_BIT:
        return slot_dtype
    return variable_dtype
