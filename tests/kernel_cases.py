"""Each update rule's pybind11 kernel (``kerasopt._kernels``) next to its
float64 reference (``tests/references.py``), behind one calling convention,
for tests that drive every rule the same way (property-based tests,
determinism across thread splits).

``CASES[kernel_name]`` (the optimizer class's ``kernel_name``) is a ``Case``:

* ``slots(hp)``: the slot names the rule keeps with these hyperparameters,
* ``initial(hp)``: the value the optimizer initializes its slots to,
* ``kernel(w, g, slots, hp, step)``: runs the C++ rule in place on the arrays,
* ``reference(w, g, slots, hp, step)``: returns (w, [slots]) in float64,
* ``scales(w, g, slots, hp)``: optional, per output, the magnitude of terms
  that cancel inside the step (rounding errors scale with them, not with the
  result),
* ``hyperparameters``: what to draw from, {name: (low, high)} for a range or
  [choices], kept where the rule is well conditioned: epsilon > 0, and decay
  rates (betas, rho) >= 0.5, since Keras's form m + (g - m) * (1 - beta)
  loses m's old magnitude to cancellation as beta -> 0, which the float64
  reference (beta * m + (1 - beta) * g) does not model.

An optimizer in ``kerasopt.optimizers.ALL`` without a case fails
``test_properties.test_every_optimizer_has_a_case``: add it here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

import keras315_references as keras315_ref
import references as ref
from kerasopt import _kernels


@dataclasses.dataclass(frozen=True)
class Case:
    slots: Callable[[dict], list]
    kernel: Callable
    reference: Callable
    hyperparameters: dict
    initial: Callable[[dict], float] = lambda hp: 0.0
    # Magnitudes of the terms that cancel inside the step, per output (w,
    # then slots), where they exceed the inputs and outputs themselves.
    scales: Callable | None = None
    # The rule rounds by the variable's element count (one element or more:
    # the decay's and ScheduleFree's average's grouping, as Keras's traced
    # graph groups them); the binding takes an array's size as the variable's.
    size_dependent: bool = False


def _adam_slots(hp):
    return ["m", "v", "v_hat"] if hp["amsgrad"] else ["m", "v"]


def _adam_kernel(w, g, s, hp, step):
    _kernels.adam(w, g, s[0], s[1], s[2] if hp["amsgrad"] else None,
                  learning_rate=hp["learning_rate"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
                  epsilon=hp["epsilon"], step=step, amsgrad=hp["amsgrad"])


def _adam_reference(w, g, s, hp, step):
    names = _adam_slots(hp)
    w, state = ref.adam(w, g, dict(zip(names, s)), step=step, **hp)
    return w, [state[k] for k in names]


def _sgd_slots(hp):
    return ["m"] if hp["momentum"] != 0.0 else []


def _sgd_kernel(w, g, s, hp, step):
    _kernels.sgd(w, g, s[0] if s else None, learning_rate=hp["learning_rate"],
                 momentum=hp["momentum"], nesterov=hp["nesterov"])


def _sgd_reference(w, g, s, hp, step):
    w, state = ref.sgd(w, g, {"m": s[0]} if s else {}, **hp)
    return w, [state["m"]] if s else []


def _rmsprop_slots(hp):
    return (["velocity"] + (["momentum"] if hp["momentum"] > 0 else [])
            + (["average_gradient"] if hp["centered"] else []))


def _rmsprop_split(s, hp):
    it = iter(s)
    velocity = next(it)
    momentum = next(it) if hp["momentum"] > 0 else None
    average = next(it) if hp["centered"] else None
    return velocity, momentum, average


def _rmsprop_kernel(w, g, s, hp, step):
    velocity, momentum, average = _rmsprop_split(s, hp)
    _kernels.rmsprop(w, g, velocity, momentum, average, **hp)


def _rmsprop_reference(w, g, s, hp, step):
    velocity, momentum, average = _rmsprop_split([np.float64(0) + x for x in s], hp)
    w, velocity, momentum, average = ref.rmsprop(
        np.float64(0) + w, np.float64(0) + g, velocity, momentum, average, **hp)
    return w, [x for x in (velocity, momentum, average) if x is not None]


def _adamw_reference(w, g, s, hp, step):
    if hp["weight_decay"] == 0:
        # weight_decay 0 is how the op is told "no decay" (a variable excluded
        # from it, as Keras skips it): no decay term at all, not w - 0 * w,
        # which would turn an infinite weight into NaN.
        adam_hp = {k: v for k, v in hp.items() if k != "weight_decay"}
        return _adam_reference(w, g, s, adam_hp, step)
    w, m, v, v_hat = ref.adamw(*_f64(w, g, s[0], s[1]),
                               np.float64(0) + s[2] if hp["amsgrad"] else None,
                               lr=hp["learning_rate"], t=step,
                               **{k: v for k, v in hp.items() if k != "learning_rate"})
    return w, [m, v] + ([v_hat] if hp["amsgrad"] else [])


def _schedule_free_kernel(adam):
    def kernel(w, g, s, hp, step):
        function = _kernels.schedulefreeadamw if adam else _kernels.schedulefreesgd
        function(w, g, *s, step=step, **_schedule_free_hp(hp, adam))
    return kernel


def _schedule_free_hp(hp, adam):
    keep = ("learning_rate", "weight_decay", "beta_1", "warmup_steps", "interpolate") + (
        ("beta_2", "epsilon") if adam else ())
    return {k: v for k, v in hp.items() if k in keep}


def _schedule_free_reference(adam):
    """y and z (and v) in float64 from keras315_references.schedule_free, the
    paper's sequences: x recovered from y and z (Keras's rule: x = y)."""
    def reference(w, g, s, hp, step):
        y, z = _f64(w, s[0])
        v = _f64(s[1])[0] if adam else None
        if hp["interpolate"]:
            with np.errstate(all="ignore"):
                x = keras315_ref.schedule_free_x(y, z, hp["beta_1"])
        else:
            x = y
        hp = _schedule_free_hp(hp, adam)
        with np.errstate(all="ignore"):
            _, z, v, y = keras315_ref.schedule_free(x, z, v, g, step=step, adam=adam, **hp)
        return y, [z, v] if adam else [z]
    return reference


def _schedule_free_scales(adam):
    """The weight is y = (1 - beta_1) z' + beta_1 x with x recovered from y
    and z (or z'): their terms cancel, so y's rounding scales with |z| and
    |z'| too, not only with y."""
    reference = _schedule_free_reference(adam)

    def scales(w, g, s, hp):
        # (scales has no step: z' at a late step bounds it at every step, as
        # the warmup is over and beta_2^t's bias correction is ~1 there, so
        # z's step is the largest it gets.)
        with np.errstate(all="ignore"):
            _, new_slots = reference(w, g, s, hp, 10**9)
            z, z_new = np.abs(_f64(s[0])[0]), np.abs(new_slots[0])
        return [z + z_new] + [None] * len(s)
    return scales


def _muon_adamw_reference(w, g, s, hp, step):
    import keras315_references

    w, m, v = keras315_references.muon_adamw(
        w, g, s[0], s[1], learning_rate=hp["learning_rate"], adam_lr_ratio=hp["adam_lr_ratio"],
        adam_weight_decay=hp["weight_decay"], beta_1=hp["beta_1"], beta_2=hp["beta_2"],
        epsilon=hp["epsilon"], step=step)
    return w, [m, v]


def _f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


CASES = {
    "Adam": Case(
        slots=_adam_slots, kernel=_adam_kernel, reference=_adam_reference,
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-8, 1e-3), amsgrad=[False, True])),
    "SGD": Case(
        slots=_sgd_slots, kernel=_sgd_kernel, reference=_sgd_reference,
        hyperparameters=dict(learning_rate=(1e-4, 1.0), momentum=[0.0, 0.5, 0.9],
                             nesterov=[False, True])),
    "RMSprop": Case(
        slots=_rmsprop_slots, kernel=_rmsprop_kernel, reference=_rmsprop_reference,
        hyperparameters=dict(learning_rate=(1e-4, 1.0), rho=(0.5, 0.99),
                             momentum=[0.0, 0.5, 0.9], epsilon=(1e-7, 1e-3),
                             centered=[False, True])),
    "Adagrad": Case(
        slots=lambda hp: ["accumulator"],
        initial=lambda hp: 0.1,
        kernel=lambda w, g, s, hp, step: _kernels.adagrad(w, g, s[0], **hp),
        reference=lambda w, g, s, hp, step: (
            lambda r: (r[0], [r[1]]))(ref.adagrad(*_f64(w, g, s[0]), **hp)),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), epsilon=(1e-7, 1e-3))),
    "Adadelta": Case(
        slots=lambda hp: ["accumulated_grad", "accumulated_delta_var"],
        kernel=lambda w, g, s, hp, step: _kernels.adadelta(w, g, s[0], s[1], **hp),
        reference=lambda w, g, s, hp, step: (
            lambda r: (r[0], list(r[1:])))(ref.adadelta(*_f64(w, g, *s), **hp)),
        hyperparameters=dict(learning_rate=(1e-3, 1.0), rho=(0.5, 0.99),
                             epsilon=(1e-7, 1e-3))),
    "AdamW": Case(
        slots=_adam_slots,
        kernel=lambda w, g, s, hp, step: _kernels.adamw(
            w, g, s[0], s[1], s[2] if hp["amsgrad"] else None, step=step, **hp),
        reference=lambda w, g, s, hp, step: _adamw_reference(w, g, s, hp, step),
        size_dependent=True,
        hyperparameters=dict(learning_rate=(1e-4, 1.0), weight_decay=(0.0, 0.1),
                             beta_1=(0.5, 0.99), beta_2=(0.5, 0.999), epsilon=(1e-8, 1e-3),
                             amsgrad=[False, True])),
    # Muon's AdamW side (its Muon side is matrix products: tests/test_muon_ops.py).
    "MuonAdamW": Case(
        slots=lambda hp: ["momentum", "velocity"],
        kernel=lambda w, g, s, hp, step: _kernels.muonadamw(w, g, s[0], s[1], step=step, **hp),
        reference=_muon_adamw_reference,
        hyperparameters=dict(learning_rate=(1e-4, 1.0), adam_lr_ratio=(0.1, 1.0),
                             weight_decay=(0.0, 0.1), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-8, 1e-3))),
    "Adamax": Case(
        slots=lambda hp: ["m", "u"],
        kernel=lambda w, g, s, hp, step: _kernels.adamax(w, g, s[0], s[1], step=step, **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.adamax(*_f64(w, g, *s), lr=hp["learning_rate"], t=step,
                       **{k: v for k, v in hp.items() if k != "learning_rate"})),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-7, 1e-3))),
    "Nadam": Case(
        slots=lambda hp: ["m", "v"],
        kernel=lambda w, g, s, hp, step: _kernels.nadam(
            w, g, s[0], s[1], step=step, u_product=_u_product(hp["beta_1"], step), **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.nadam(*_f64(w, g, *s), _u_product(hp["beta_1"], step), lr=hp["learning_rate"],
                      t=step, **{k: v for k, v in hp.items() if k != "learning_rate"})),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-7, 1e-3))),
    "Lion": Case(
        slots=lambda hp: ["m"],
        kernel=lambda w, g, s, hp, step: _kernels.lion(w, g, s[0], **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], [r[1]]))(
            ref.lion(*_f64(w, g, s[0]), lr=hp["learning_rate"], beta_1=hp["beta_1"],
                     beta_2=hp["beta_2"])),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99),
                             beta_2=(0.5, 0.999))),
    "Ftrl": Case(
        slots=lambda hp: ["accumulator", "linear"],
        initial=lambda hp: 0.1,
        kernel=lambda w, g, s, hp, step: _kernels.ftrl(w, g, s[0], s[1], **hp),
        scales=lambda w, g, s, hp: _ftrl_scales(w, g, s[0], hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.ftrl(*_f64(w, s[0], s[1], g), **hp)),
        hyperparameters=dict(learning_rate=(1e-3, 1.0), learning_rate_power=[-1.0, -0.5, 0.0],
                             l1=(0.0, 0.1), l2=(0.0, 0.1), l2_shrinkage=(0.0, 0.1),
                             beta=(0.0, 0.1))),
    "Lamb": Case(
        slots=lambda hp: ["m", "v"],
        kernel=lambda w, g, s, hp, step: _kernels.lamb(w, g, s[0], s[1], step=step, **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.lamb(*_f64(w, s[0], s[1], g), step=step, **hp)),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-7, 1e-3))),
    "AdaBelief": Case(
        slots=lambda hp: ["momentum", "belief"],
        kernel=lambda w, g, s, hp, step: _kernels.adabelief(w, g, s[0], s[1], step=step, **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.adabelief(*_f64(w, g, *s), step=step, **hp)),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-16, 1e-3), amsgrad=[False, True],
                             rectify=[False, True], sma_threshold=[4.0, 5.0])),
    "RAdam": Case(
        slots=lambda hp: ["momentum", "velocity"] + (["velocity_hat"] if hp["amsgrad"] else []),
        kernel=lambda w, g, s, hp, step: _kernels.radam(w, g, *s, step=step, **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.radam(*_f64(w, g, *s), step=step, **hp)),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-7, 1e-3), amsgrad=[False, True],
                             sma_threshold=[4.0, 5.0, 6.0], total_steps=[0, 20],
                             warmup_proportion=[0.1, 0.5], min_lr=[0.0, 1e-3])),
    "Yogi": Case(
        slots=lambda hp: ["momentum", "velocity"],
        initial=lambda hp: 1e-6,
        kernel=lambda w, g, s, hp, step: _kernels.yogi(w, g, s[0], s[1], **hp),
        reference=lambda w, g, s, hp, step: (lambda r: (r[0], list(r[1:])))(
            ref.yogi(*_f64(w, g, *s), **hp)),
        hyperparameters=dict(learning_rate=(1e-4, 1.0), beta_1=(0.5, 0.99), beta_2=(0.5, 0.999),
                             epsilon=(1e-4, 1e-2), l1=[0.0, 0.0, 1e-3], l2=[0.0, 0.0, 1e-2],
                             tanh_activation=[False, True])),
}
for _name, _adam in (("ScheduleFreeAdamW", True), ("ScheduleFreeSGD", False)):
    CASES[_name] = Case(
        slots=(lambda hp: ["z", "v"]) if _adam else (lambda hp: ["z"]),
        kernel=_schedule_free_kernel(_adam), reference=_schedule_free_reference(_adam),
        scales=_schedule_free_scales(_adam), size_dependent=True,
        # beta_1 >= 0.5: x = (y - (1 - beta_1) z) / beta_1 amplifies y's and
        # z's roundings by 1 / beta_1 (see scales).
        hyperparameters=dict(learning_rate=(1e-4, 1.0), weight_decay=[0.0, 0.01, 0.1],
                             beta_1=(0.5, 1.0), warmup_steps=[0.0, 1.0, 50.0],
                             interpolate=[False, True],
                             **(dict(beta_2=(0.5, 0.999), epsilon=(1e-8, 1e-3)) if _adam else {})))

# Rules whose step couples a whole variable (norms: Lars, NovoGrad) or works on
# matrices (FullMatrixAdagrad, Shampoo) have no case here yet: their own test
# files check them against their references (test_lars.py, test_novograd.py,
# test_second_order.py), including special values where defined.
NOT_IN_TABLE = {"Lars", "NovoGrad", "FullMatrixAdagrad", "Shampoo"}


def _u_product(beta_1, step):
    product = 1.0
    for t in range(1, step + 1):
        product = ref.nadam_u_product(product, beta_1, t)
    return product


def _ftrl_scales(w, g, n, hp):
    """z = z + g' - (n_new^p - n^p) / lr * w: the two power terms cancel, and
    w = (clip(z) - z) / (n_new^p / lr + 2 l2 + beta / lr) carries z's error."""
    w, g, n = (np.abs(np.asarray(x, np.float64)) for x in (w, g, n))
    p, lr = -hp["learning_rate_power"], hp["learning_rate"]
    with np.errstate(all="ignore"):
        n_new = n + g * g
        z_terms = g + 2 * hp["l2_shrinkage"] * w + (n_new ** p + n ** p) / lr * w
        quadratic = n_new ** p / lr + 2 * hp["l2"] + hp["beta"] / lr
        return [z_terms / quadratic, n_new, z_terms]


def lamb_trust_ratio(w, new_slots, hp, step):
    """LAMB's ||w|| / ||r|| in float64, from the old weight and the new moments."""
    m, v = (np.asarray(x, np.float64) for x in new_slots)
    with np.errstate(all="ignore"):
        r = (m / (1 - hp["beta_1"] ** step)) / (
            np.sqrt(v / (1 - hp["beta_2"] ** step)) + hp["epsilon"])
        w_norm = np.sqrt(np.sum(np.square(np.asarray(w, np.float64))))
        r_norm = np.sqrt(np.sum(r * r))
    return w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
