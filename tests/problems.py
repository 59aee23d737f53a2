"""Test objectives for the convergence tests: Rosenbrock's valley and an
ill-conditioned quadratic, minimized by a Keras optimizer in one tf.function."""

import keras
import numpy as np
import tensorflow as tf


def rosenbrock(p):
    """(1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1)."""
    return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


CURVATURES = np.logspace(0, 3, 10)  # condition number 1000


def quadratic(p):
    """0.5 sum_i c_i p_i^2 with curvatures c_i from 1 to 1000, minimum 0 at 0."""
    return 0.5 * tf.reduce_sum(tf.constant(CURVATURES, p.dtype) * p * p)


def minimize(opt, loss, start, steps):
    """Runs `steps` optimizer steps on one float32 variable; returns (loss, point)."""
    var = keras.Variable(np.array(start, np.float32))
    opt.build([var])

    @tf.function
    def train():
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                value = loss(var.value)
            opt.apply_gradients([(tape.gradient(value, var.value), var)])

    train()
    return float(loss(var.value)), var.numpy()
