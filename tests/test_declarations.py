"""The ops are built from each rule's declaration (cc/kernels/<rule>.h,
cc/tf/rule_ops.h): their names follow the optimizer classes, every op takes
the shared inputs, and what each class passes its op is what the declaration
lists (so the Python side cannot drift from the C++ one)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api

import kerasopt
from kerasopt import op_library
from kerasopt.optimizers import ALL

from conftest import require_kernel_library

SHARED_INPUTS = ["learning_rate", "step"]
# Attrs every apply op has, whatever the rule.
GENERIC_ATTRS = {"T", "Tindices", "N", "num_slots", "with_average",
                 "accumulation_steps"}
# Inputs every dense and multi-tensor op takes after the rule's own (the
# step's features: cc/kernels/step_features.h), not named by kernel_hyperparameters.
STEP_FEATURE_INPUTS = {"features"}


def _op_defs():
    """The OpDefs of kerasopt's ops, as TensorFlow registered them."""
    require_kernel_library()
    ops = op_def_pb2.OpList()
    ops.ParseFromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    return {op.name: op for op in ops.op if op.name.startswith("Kerasopt")}


def test_python_op_name_is_tensorflows():
    """Every op of the library is found under op_library.python_op_name."""
    ops = require_kernel_library().ops
    for name in _op_defs():
        assert hasattr(ops, op_library.python_op_name(name)), name
    assert op_library.python_op_name("KerasoptApplyRMSprop") == "kerasopt_apply_rm_sprop"
    assert op_library.python_op_name("KerasoptMultiApplyAdamW") == "kerasopt_multi_apply_adam_w"


# Muon's declared rule is its AdamW side; its Muon side runs the
# KerasoptMuon* ops around TensorFlow's matrix products (muon_step.py).
RULE_NAMED_OTHERWISE = {"Muon": "MuonAdamW"}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_op_names_follow_the_class_names(cls):
    assert cls.kernel_name == RULE_NAMED_OTHERWISE.get(cls.__name__, cls.__name__)
    assert f"KerasoptApply{cls.kernel_name}" in _op_defs()


def test_every_apply_op_takes_the_shared_inputs_first():
    for name, op in _op_defs().items():
        if "Apply" not in name:
            continue
        inputs = [arg.name for arg in op.input_arg]
        first = inputs.index("learning_rate")
        assert inputs[first:first + 2] == SHARED_INPUTS, (name, inputs)


# FullMatrixAdagrad and Shampoo call their op from update_step (matrix slots).
PER_ELEMENT = [cls for cls in ALL
               if cls not in (kerasopt.FullMatrixAdagrad, kerasopt.Shampoo, kerasopt.SOAP)]


@pytest.mark.parametrize("cls", PER_ELEMENT, ids=lambda c: c.__name__)
def test_kernel_hyperparameters_are_the_declared_inputs(cls):
    """kernel_hyperparameters names exactly the op's declared scalars and flags."""
    op = _op_defs()[f"KerasoptApply{cls.kernel_name}"]
    inputs = [arg.name for arg in op.input_arg]
    declared = set(inputs[inputs.index("step") + 1:]) - STEP_FEATURE_INPUTS
    declared |= {attr.name for attr in op.attr} - GENERIC_ATTRS
    variable = keras.Variable(np.ones((3, 2), np.float32))
    optimizer = cls()
    optimizer.build([variable])
    assert set(optimizer.kernel_hyperparameters(variable.value)) == declared
