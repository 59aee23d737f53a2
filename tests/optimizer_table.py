"""The one table of optimizers the robustness tests cover: every class in
``kerasopt.optimizers.ALL`` (so optimizers added later join automatically),
each constructed with its default arguments."""

from __future__ import annotations

import pytest

import kerasopt

OPTIMIZERS = tuple(kerasopt.optimizers.ALL)


def optimizer_params():
    """pytest params over the classes, with their names as ids."""
    return [pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS]


# One optimizer per way kerasopt makes an update, for the tests of mechanisms
# that every rule shares (non-finite steps, wrappers around them, errors that
# write nothing, loss-scale skips): the rule's math differs between Adam and
# Adamax, not the path the mechanism takes. Every class with its own
# update_step joins automatically (representative_params).
REPRESENTATIVES = (
    "Adam",      # bias correction from iterations, the common element-wise path
    "SGD",       # a slot only with momentum
    "Nadam",     # its own _backend_update_step (the momentum cache variable)
    "Ftrl",      # accumulator, L1/L2; the row-wise sparse step
    "Lamb",      # per-variable norms (trust ratio)
    "NovoGrad",  # a scalar slot per variable
    "ScheduleFreeAdamW",  # two weight sequences
    "Adafactor",  # factored row/column statistics, one op per variable
)


def representative_params():
    """pytest params over REPRESENTATIVES and every class that overrides
    update_step (FullMatrixAdagrad, Shampoo, Muon, and any added later)."""
    from kerasopt.optimizers.fused import FusedOptimizer

    unknown = set(REPRESENTATIVES) - {cls.__name__ for cls in OPTIMIZERS}
    if unknown:
        raise ValueError(f"REPRESENTATIVES names what kerasopt.optimizers.ALL lacks: {unknown}")
    return [pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS
            if cls.__name__ in REPRESENTATIVES or cls.update_step is not FusedOptimizer.update_step]


def apply_kernel_params():
    """The optimizers whose update goes through ``apply_kernel`` (one op call
    per variable that tests can record); FullMatrixAdagrad and Shampoo override
    ``update_step`` with their own ops (tested in test_second_order.py)."""
    from kerasopt.optimizers.fused import FusedOptimizer

    return [pytest.param(cls, id=cls.__name__) for cls in OPTIMIZERS
            if cls.update_step is FusedOptimizer.update_step]


# Arguments of keras.optimizers.Optimizer itself (not an algorithm's own).
BASE_ARGUMENTS = frozenset({
    "learning_rate", "clipnorm", "clipvalue", "global_clipnorm", "use_ema", "ema_momentum",
    "ema_overwrite_frequency", "loss_scale_factor", "gradient_accumulation_steps", "name"})


def float_hyperparameters(cls) -> dict:
    """The algorithm's own float arguments and their defaults (weight_decay
    where its default is a float), read from the constructor's signature."""
    import inspect

    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in BASE_ARGUMENTS and isinstance(p.default, float)}
