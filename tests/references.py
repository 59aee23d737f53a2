"""Float64 NumPy references of the update rules, written from the papers.

Each function takes the state as float64 arrays and returns the new state (it
never updates in place). Where Keras departs from the paper, the reference
follows Keras's formulation and says so; the formulas are written the way the
papers write them, not in the kernels' operation order.
"""

from __future__ import annotations

import numpy as np


def rmsprop(w, g, velocity, momentum_slot=None, average_gradient=None, *,
            learning_rate, rho, momentum, epsilon, centered):
    """RMSprop: Tieleman & Hinton (2012), lecture 6.5; centered form Graves (2013), eqs. 38-41.

    Lecture: MeanSquare(w, t) = 0.9 MeanSquare(w, t-1) + 0.1 (dE/dw)^2, and the
    gradient is divided by sqrt(MeanSquare(w, t)). Graves: n = aleph n + (1 - aleph) e^2,
    g = aleph g + (1 - aleph) e, Delta = beth Delta - gimel e / sqrt(n - g^2 + daleth),
    w = w + Delta. Keras's form (followed here): epsilon inside the root in both
    forms, momentum accumulates the positive step and is subtracted, and there
    is no momentum at all when momentum == 0.
    Returns (w, velocity, momentum_slot, average_gradient).
    """
    mean_square = rho * velocity + (1.0 - rho) * np.square(g)
    if centered:
        mean_grad = rho * average_gradient + (1.0 - rho) * g
        scale = np.sqrt(mean_square - np.square(mean_grad) + epsilon)
    else:
        mean_grad = average_gradient
        scale = np.sqrt(mean_square + epsilon)
    step = learning_rate * g / scale
    if momentum > 0:
        momentum_slot = momentum * momentum_slot + step
        step = momentum_slot
    return w - step, mean_square, momentum_slot, mean_grad


def adagrad(w, g, accumulator, *, learning_rate, epsilon):
    """Adagrad: Duchi, Hazan & Singer (2011), diagonal update (their eq. after Fig. 1).

    Paper: x_{t+1} = x_t - eta * g_t / (delta + sqrt(sum_{tau<=t} g_tau^2)).
    Keras's form (followed here): the sum starts at initial_accumulator_value
    and epsilon sits inside the root: x - eta * g / sqrt(G + epsilon).
    Returns (w, accumulator).
    """
    sum_of_squares = accumulator + g**2
    return w - learning_rate * g / np.sqrt(sum_of_squares + epsilon), sum_of_squares


def adadelta(w, g, accumulated_grad, accumulated_delta_var, *, learning_rate, rho, epsilon):
    """Adadelta: Zeiler (2012), Algorithm 1.

        E[g^2]_t   = rho E[g^2]_{t-1} + (1 - rho) g_t^2
        Delta x_t  = - RMS[Delta x]_{t-1} / RMS[g]_t * g_t,   RMS[y] = sqrt(E[y^2] + eps)
        E[Dx^2]_t  = rho E[Dx^2]_{t-1} + (1 - rho) Delta x_t^2
        x_{t+1}    = x_t + Delta x_t

    Keras's form (followed here): the last line is x + learning_rate * Delta x;
    the paper has no learning rate (learning_rate=1.0 is the paper).
    Returns (w, accumulated_grad, accumulated_delta_var).
    """
    def rms(expectation):
        return np.sqrt(expectation + epsilon)

    e_g2 = rho * accumulated_grad + (1.0 - rho) * g**2
    delta_x = -(rms(accumulated_delta_var) / rms(e_g2)) * g
    e_dx2 = rho * accumulated_delta_var + (1.0 - rho) * delta_x**2
    return w + learning_rate * delta_x, e_g2, e_dx2
