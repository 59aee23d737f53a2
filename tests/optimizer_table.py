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
