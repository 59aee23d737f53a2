"""Runs real kerasopt optimizers over a :class:`~kerasopt.viz.surfaces.Landscape`.

The parameters are one 2-element variable ``(x, y)``; each step takes the
surface's gradient at the current point (autodiff of the smooth part plus the
noise-field gradient, see :mod:`kerasopt.viz.surfaces`) and hands it to the
optimizer's own ``apply_gradients``. Nothing here re-implements an update
rule: the step is traced under ``kerasopt.implementation("kernel")`` by
default, so every update runs the fused C++ op (or fails saying why it
cannot), and the op types found in the traced step are recorded with the
trajectory.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kerasopt.viz import specs as specs_lib


@dataclasses.dataclass
class Trajectory:
    label: str
    points: np.ndarray  # (steps + 1, 2): the start, then the point after each step
    losses: np.ndarray  # (steps + 1,): the surface (with noise) at each point
    gradients: np.ndarray  # (steps, 2): the gradient each step applied
    kernel_ops: tuple  # kerasopt op types in the traced step, e.g. ("KerasoptMultiApplyAdam",)

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def kerasopt_op_types(graph) -> tuple:
    """Sorted kerasopt op types in a graph, including its nested functions."""
    graph_def = graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return tuple(sorted(op for op in ops if op.startswith("Kerasopt")))


def run(landscape, spec, start, steps: int, *, dtype: str = "float32",
        implementation: str = "kernel") -> Trajectory:
    """Optimizes ``landscape`` from ``start`` for ``steps`` steps with one optimizer.

    Args:
      landscape: a :class:`~kerasopt.viz.surfaces.Landscape`.
      spec: an :class:`~kerasopt.viz.specs.OptimizerSpec` or a spec string.
      start: ``(x, y)``.
      steps: number of optimizer steps (>= 0).
      dtype: the variable's dtype.
      implementation: kerasopt path (``"kernel"``, ``"auto"`` or ``"tf"``).
    """
    import keras
    import tensorflow as tf

    import kerasopt

    if isinstance(spec, str):
        spec = specs_lib.parse(spec)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"start must be two finite numbers (x, y), got {start.tolist()!r}")

    point = keras.Variable(start, dtype=dtype, name="xy")
    optimizer = spec.build()
    optimizer.build([point])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = landscape.tf_loss(point.value)
        gradient = tape.gradient(loss, point.value)
        optimizer.apply_gradients([(gradient, point)])
        return gradient

    with kerasopt.implementation(implementation):
        concrete = step.get_concrete_function()
    points, gradients = [point.numpy().astype(np.float64)], []
    for _ in range(int(steps)):
        gradients.append(concrete().numpy().astype(np.float64))
        points.append(point.numpy().astype(np.float64))
    points = np.stack(points)
    return Trajectory(
        label=spec.label,
        points=points,
        losses=landscape.value(points[:, 0], points[:, 1]),
        gradients=np.stack(gradients) if gradients else np.zeros((0, 2)),
        kernel_ops=kerasopt_op_types(concrete.graph),
    )


def run_all(landscape, specs, start, steps: int, **kwargs) -> list:
    """:func:`run` for each spec (same start and steps)."""
    return [run(landscape, spec, start, steps, **kwargs) for spec in specs]


def learning_rate_sweep(spec, learning_rates) -> list:
    """One spec per learning rate, labelled ``Name lr=...``, other arguments kept."""
    if isinstance(spec, str):
        spec = specs_lib.parse(spec)
    rates = [float(r) for r in learning_rates]
    if not rates or any(not np.isfinite(r) or r < 0 for r in rates):
        raise ValueError(f"learning_rates must be finite numbers >= 0, got {list(learning_rates)!r}")
    out = []
    for rate in rates:
        swept = spec.with_kwargs(learning_rate=rate)
        out.append(dataclasses.replace(swept, label_override=f"{spec.cls.__name__} lr={rate:g}"))
    return out
