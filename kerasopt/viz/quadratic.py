"""Gradient descent on a quadratic, with the theory printed beside the measurement.

The problem: ``L(x) = xᵀQx`` with ``Q = R diag(λ) Rᵀ`` (default ``λ = (1, 6)``,
``R`` a rotation by π/16), start ``(9.5, -1)``. Its gradient is ``Hx`` with
Hessian ``H = 2Q``, so the curvatures the textbook formulas speak of are the
eigenvalues of ``H``, ``2λ``.

Each run is (preconditioned) gradient descent ``x ← x - α P ∇L(x)`` done by
the real ``kerasopt.SGD`` (its fused kernel, on a float64 variable): the
gradient is taken with ``tf.GradientTape``, multiplied by ``P`` and handed to
``apply_gradients``. Theory: the iteration matrix is ``I - αPH``; with
``PH = V diag(μ) V⁻¹`` the coordinates ``z = V⁻¹x`` evolve independently,
``z_i ← (1 - αμ_i) z_i``, and the loss splits into ``Σ_i ½ μ_i z_i²`` (with
``V = P^½ W``, ``W`` the eigenvectors of ``P^½ H P^½``). The per-component
contraction factor is ``|1 - αμ_i|``; the best constant step is
``α* = 2 / (μ_min + μ_max)``, giving ``(κ - 1)/(κ + 1)`` with ``κ = μ_max/μ_min``;
steps beyond ``2/μ_max`` diverge. With ``P = I``, ``μ = 2λ``.

Runs: plain GD with α too small (``α*/10``), optimal (``α*``), oscillating
(``1.9/μ_max``: the stiff component flips sign each step, slowly decaying) and
divergent (``2.1/μ_max``); diagonal (Jacobi) preconditioning ``P = diag(H)⁻¹``
at its own ``α*``; and the ideal preconditioner ``P = Q⁻¹`` with ``α = ½``
(``αP = H⁻¹``, Newton's step), which reaches the minimum in one step.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Quadratic:
    eigenvalues: tuple = (1.0, 6.0)
    angle: float = math.pi / 16
    start: tuple = (9.5, -1.0)

    def __post_init__(self):
        lam = np.asarray(self.eigenvalues, np.float64)
        if lam.shape != (2,) or not np.all(lam > 0) or not np.all(np.isfinite(lam)):
            raise ValueError(f"eigenvalues must be two positive numbers, got {self.eigenvalues!r}")
        if np.asarray(self.start, np.float64).shape != (2,):
            raise ValueError(f"start must be (x, y), got {self.start!r}")

    @property
    def rotation(self) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    @property
    def Q(self) -> np.ndarray:
        R = self.rotation
        return R @ np.diag(self.eigenvalues) @ R.T

    @property
    def hessian(self) -> np.ndarray:
        return 2.0 * self.Q

    def loss(self, points) -> np.ndarray:
        points = np.asarray(points, np.float64)
        return np.einsum("...i,ij,...j->...", points, self.Q, points)


@dataclasses.dataclass(frozen=True)
class Method:
    """``x ← x - α P ∇L``: a name, the step ``α`` and the preconditioner ``P``."""

    name: str
    learning_rate: float
    preconditioner: np.ndarray

    def modes(self, problem: Quadratic):
        """``(μ, V)``: eigenvalues of ``PH`` (ascending) and its eigenvectors ``V = P^½ W``."""
        P, H = self.preconditioner, problem.hessian
        w, U = np.linalg.eigh(P)
        root = U @ np.diag(np.sqrt(w)) @ U.T
        mu, W = np.linalg.eigh(root @ H @ root)
        return mu, root @ W

    def theory_factors(self, problem: Quadratic) -> np.ndarray:
        """``1 - αμ_i`` per component (signed: negative means it oscillates)."""
        mu, _ = self.modes(problem)
        return 1.0 - self.learning_rate * mu


def optimal_rate(mu) -> float:
    return 2.0 / (float(np.min(mu)) + float(np.max(mu)))


def standard_methods(problem: Quadratic) -> list:
    """The study's runs (see the module docstring)."""
    eye = np.eye(2)
    mu = 2.0 * np.asarray(problem.eigenvalues, np.float64)
    best = optimal_rate(mu)
    jacobi = np.diag(1.0 / np.diag(problem.hessian))
    jacobi_mu, _ = Method("", 1.0, jacobi).modes(problem)
    return [
        Method("too small", best / 10, eye),
        Method("optimal", best, eye),
        Method("oscillating", 1.9 / mu.max(), eye),
        Method("divergent", 2.1 / mu.max(), eye),
        Method("diagonal precond.", optimal_rate(jacobi_mu), jacobi),
        Method("ideal precond. Q⁻¹", 0.5, np.linalg.inv(problem.Q)),
    ]


@dataclasses.dataclass
class Run:
    method: Method  # with the learning rate as applied (Keras stores it in float32)
    mu: np.ndarray  # curvatures of PH
    points: np.ndarray  # (steps + 1, 2)
    losses: np.ndarray  # (steps + 1,)
    components: np.ndarray  # (steps + 1, 2): ½ μ_i z_i², summing to the loss
    theory: np.ndarray  # 1 - αμ_i
    measured: np.ndarray  # the per-step ratio z_i(k+1)/z_i(k), median over accurate steps
    kernel_ops: tuple

    @property
    def predicted_final_loss(self) -> float:
        steps = len(self.points) - 1
        return float(np.sum(self.components[0] * self.theory ** (2 * steps)))


def measured_factors(z: np.ndarray) -> np.ndarray:
    """Per component, the median ratio ``z_i(k+1)/z_i(k)`` over the steps where
    ``z_i(k)`` is still resolved next to the other component (|z_i| > 1e-8 ‖z‖),
    so rounding in ``x`` does not swamp it; NaN where no step qualifies."""
    out = np.full(z.shape[1], np.nan)
    norms = np.linalg.norm(z, axis=1)
    for i in range(z.shape[1]):
        ok = (np.abs(z[:-1, i]) > 1e-8 * norms[:-1]) & (z[:-1, i] != 0) & np.isfinite(z[1:, i])
        if ok.any():
            out[i] = float(np.median(z[1:, i][ok] / z[:-1, i][ok]))
    return out


def run_method(problem: Quadratic, method: Method, steps: int = 30, *, implementation: str = "kernel") -> Run:
    """Runs one method with ``kerasopt.SGD`` on a float64 variable."""
    import keras
    import tensorflow as tf

    import kerasopt
    from kerasopt.viz.trajectories import kerasopt_op_types

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    Q = tf.constant(problem.Q)
    P = tf.constant(np.asarray(method.preconditioner, np.float64))
    x = keras.Variable(np.asarray(problem.start, np.float64), dtype="float64", name="x")
    optimizer = kerasopt.SGD(learning_rate=method.learning_rate)
    optimizer.build([x])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            v = x.value
            loss = tf.tensordot(v, tf.linalg.matvec(Q, v), 1)
        gradient = tape.gradient(loss, v)
        optimizer.apply_gradients([(tf.linalg.matvec(P, gradient), x)])

    with kerasopt.implementation(implementation):
        concrete = step.get_concrete_function()
    points = [x.numpy()]
    for _ in range(steps):
        concrete()
        points.append(x.numpy())
    points = np.stack(points)
    # Keras keeps the learning rate in a float32 variable: the theory uses the
    # step that was really taken (1/7 becomes 0.142857149...).
    applied = dataclasses.replace(method, learning_rate=float(np.asarray(optimizer.learning_rate)))
    mu, V = applied.modes(problem)
    z = np.linalg.solve(V, points.T).T
    return Run(applied, mu, points, problem.loss(points), 0.5 * mu * z ** 2,
               applied.theory_factors(problem), measured_factors(z), kerasopt_op_types(concrete.graph))


def study(problem: Quadratic = Quadratic(), steps: int = 30, methods=None, **kwargs) -> list:
    return [run_method(problem, m, steps, **kwargs) for m in (methods or standard_methods(problem))]


def report(problem: Quadratic, runs) -> str:
    """The theory-vs-measured table as text."""
    lam = ", ".join(f"{v:g}" for v in problem.eigenvalues)
    lines = [f"L(x) = xᵀQx, Q = R diag({lam}) Rᵀ, R = rotation by {problem.angle:.6g} rad, "
             f"start {tuple(problem.start)}; Hessian H = 2Q",
             "update x ← x − α P ∇L by kerasopt.SGD; μ = eigenvalues of PH; factor per step = 1 − αμ",
             f"{'run':<20} {'α':>9} {'μ':>8} {'theory 1−αμ':>12} {'measured':>12} {'|theory|':>9}"
             f" {'loss@end':>11} {'predicted':>11}"]
    for run in runs:
        for i in range(len(run.mu)):
            head = f"{run.method.name:<20} {run.method.learning_rate:>9.5g}" if i == 0 else " " * 30
            tail = (f" {run.losses[-1]:>11.4g} {run.predicted_final_loss:>11.4g}" if i == 0 else "")
            lines.append(f"{head} {run.mu[i]:>8.4g} {run.theory[i]:>12.6f} {run.measured[i]:>12.6f}"
                         f" {abs(run.theory[i]):>9.6f}{tail}")
    return "\n".join(lines)


def figure(problem: Quadratic, runs, *, figsize=(12, 4.6)):
    """Left: the runs over the contours of L. Right: each eigen-component's loss per step."""
    from kerasopt.viz import _mpl

    fig = _mpl.figure(figsize)
    ax_path, ax_comp = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    span = 1.15 * float(np.max(np.abs(problem.start)))
    grid = np.linspace(-span, span, 201)
    X, Y = np.meshgrid(grid, grid)
    Z = problem.loss(np.stack([X, Y], axis=-1))
    ax_path.contour(X, Y, Z, levels=np.geomspace(max(Z.min(), 1e-2), Z.max(), 14), colors="0.55", linewidths=0.7)
    for run, color in zip(runs, _mpl.colors(len(runs))):
        label = f"{run.method.name} (α={run.method.learning_rate:.3g})"
        shown = np.where(np.abs(run.points) <= span, run.points, np.nan)
        ax_path.plot(shown[:, 0], shown[:, 1], ".-", color=color, linewidth=1, markersize=3, label=label)
        steps = np.arange(len(run.points))
        for i, style in enumerate(("-", "--")):
            ax_comp.semilogy(steps, np.maximum(run.components[:, i], 1e-30), style, color=color, linewidth=1.2,
                             label=f"{run.method.name}: μ={run.mu[i]:.3g}, 1−αμ={run.theory[i]:+.3f}")
    ax_path.set(xlim=(-span, span), ylim=(-span, span), aspect="equal", xlabel="x₁", ylabel="x₂",
                title="trajectories over L(x) = xᵀQx")
    ax_path.legend(fontsize=7, loc="lower left")
    ax_comp.set(xlabel="step", ylabel="½ μᵢ zᵢ²", ylim=(1e-20, None), title="loss per eigen-component")
    ax_comp.grid(linestyle="--", alpha=0.5)
    ax_comp.legend(fontsize=6, ncol=2, loc="lower left")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.92, wspace=0.2)
    return fig
