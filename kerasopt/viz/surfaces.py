"""Two-parameter test surfaces with seeded, grid-based noise.

Each surface is a smooth function ``f(x, y)`` plus, optionally, two noise
fields sampled once on a 200 × 200 grid over the surface's square domain
(``[-10, 10]²`` for f0–f5) and looked up at the nearest grid point:

* coarse noise ``r``: a standard-normal field on a 25 × 25 grid, bilinearly
  resized to 200 × 200 (smooth bumps about one coarse cell wide);
* fine noise ``c``: a standard normal per grid point, scaled by ``|x||y|/100``
  (none on the axes, strongest in the corners).

The surfaces (f0–f5 as in the "Optimizers and Surfaces" tutorial)::

    f0 = (x/10)² + (y/10)²                                         + 0.04 r + 0.01 c
    f1 = (x² + y² + 0.5y + 0.06(x+1)³ + 0.1(y-1)³) / 400             + 0.01 r + 0.01 c
    f2 = (x²/2 - y²/2) / 40                                        + 0.01 r + 0.01 c
    f3 = (x²/2 - y²/2 - 0.75xy) / 60                               + 0.05 r + 0.01 c
    f4 = ((-sin(x/5) - cos(y/10)) + 2) / 2                         + 0.05 r + 0.01 c
    f5 = ((x/8)² + (y/12)²) / 2                                    + 0.04 r + 0.01 c
    rosenbrock = (1 - x)² + 100 (y - x²)²       on [-2.5, 2.5]²    + 0.1 r + 0.1 c
    beale = (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²
                                                on [-4.5, 4.5]²    + 0.1 r + 0.1 c
    saddle = (x² - y²)/50 + y⁴/5000  (saddle point at the origin,
             minima -0.5 at (0, ±√50))                             + 0.02 r + 0.01 c

The grid is ``-w + i·h`` for ``i = 0..199``, ``h = 2w/200`` (``w`` the
half-width), and noise arrays are indexed ``[iy, ix]``. A point outside the
domain takes the noise of the nearest edge point (a NaN point, that of cell 0).

Gradients: the nearest-grid lookup is piecewise constant, so its derivative
is zero almost everywhere (the tutorial computes the lookup index with an
integer cast, so autodiff sees no noise at all and the noise only changes the
reported loss). By default (``noise_gradient="grid"``) a surface's gradient is
autodiff of the smooth part plus the central-difference gradient of the noise
field on the grid, looked up at the same nearest grid point: the derivative of
the field's piecewise-linear interpolant, so the optimizers feel the bumps
that the loss shows, at the loss's resolution. ``noise_gradient="none"`` gives
the tutorial's behaviour.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

GRID = 200
COARSE_GRID = 25
NOISE_GRADIENTS = ("grid", "none")


@dataclasses.dataclass(frozen=True)
class Surface:
    """A smooth test function and how much of each noise it gets."""

    name: str
    formula: str
    smooth: Callable  # smooth(x, y, math) with math = numpy or tf.math
    coarse_weight: float
    fine_weight: float
    half_width: float = 10.0
    start: tuple = (9.0, 9.0)  # a start point that shows the surface well


SURFACES = {s.name: s for s in (
    Surface("f0", "(x/10)² + (y/10)²",
            lambda x, y, m: (x / 10) ** 2 + (y / 10) ** 2, 0.04, 0.01),
    Surface("f1", "(x² + y² + 0.5y + 0.06(x+1)³ + 0.1(y-1)³)/400",
            lambda x, y, m: (x ** 2 + y ** 2 + 0.5 * y + 0.06 * (x + 1) ** 3 + 0.1 * (y - 1) ** 3) / 400,
            0.01, 0.01),
    Surface("f2", "(x²/2 - y²/2)/40",
            lambda x, y, m: (x ** 2 / 2 - y ** 2 / 2) / 40, 0.01, 0.01, start=(7.5, -0.5)),
    Surface("f3", "(x²/2 - y²/2 - 0.75xy)/60",
            lambda x, y, m: (x ** 2 / 2 - y ** 2 / 2 - 0.75 * x * y) / 60, 0.05, 0.01, start=(-9.0, 2.5)),
    Surface("f4", "((-sin(x/5) - cos(y/10)) + 2)/2",
            lambda x, y, m: ((-m.sin(x / 5) - m.cos(y / 10)) + 2) / 2, 0.05, 0.01, start=(-7.5, -1.0)),
    Surface("f5", "((x/8)² + (y/12)²)/2",
            lambda x, y, m: ((x / 8) ** 2 + (y / 12) ** 2) / 2, 0.04, 0.01),
    Surface("rosenbrock", "(1 - x)² + 100(y - x²)²",
            lambda x, y, m: (1 - x) ** 2 + 100 * (y - x ** 2) ** 2, 0.1, 0.1,
            half_width=2.5, start=(-1.5, 2.0)),
    Surface("beale", "(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²",
            lambda x, y, m: ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
                             + (2.625 - x + x * y ** 3) ** 2), 0.1, 0.1,
            half_width=4.5, start=(1.0, 1.5)),
    Surface("saddle", "(x² - y²)/50 + y⁴/5000",
            lambda x, y, m: (x ** 2 - y ** 2) / 50 + y ** 4 / 5000, 0.02, 0.01, start=(9.0, 0.5)),
)}


def get(name: str) -> Surface:
    try:
        return SURFACES[name]
    except KeyError:
        raise ValueError(f"surface must be one of {', '.join(SURFACES)}, got {name!r}") from None


def grid_coordinates(half_width: float, size: int = GRID) -> np.ndarray:
    """``-w + i·(2w/size)`` for ``i = 0..size-1`` (float64)."""
    return -half_width + np.arange(size) * (2.0 * half_width / size)


def bilinear_resize(field: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square 2-D array to ``size × size`` (half-pixel centres,
    as ``tf.image.resize(method="bilinear")``)."""
    n = field.shape[0]
    src = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, n - 1)
    frac = src - low
    rows = field[low] * (1 - frac)[:, None] + field[high] * frac[:, None]
    return rows[:, low] * (1 - frac)[None, :] + rows[:, high] * frac[None, :]


def noise_fields(seed: int, half_width: float = 10.0, size: int = GRID, coarse_size: int = COARSE_GRID):
    """``(r, c)``: the coarse and fine noise on the grid, indexed ``[iy, ix]``.

    Drawn from ``numpy.random.default_rng(seed)``: first the
    ``coarse_size²`` coarse normals (row-major, ``[iy, ix]``), then the
    ``size²`` fine normals.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((coarse_size, coarse_size))
    fine = rng.standard_normal((size, size))
    xs = grid_coordinates(half_width, size)
    scale = np.abs(xs)[:, None] * np.abs(xs)[None, :] / 100.0  # |y| along rows, |x| along columns
    return bilinear_resize(coarse, size), fine * scale


class Landscape:
    """A surface with its noise drawn: values on the grid, at points, and in TensorFlow.

    Args:
      surface: a :class:`Surface` or its name.
      seed: the noise seed.
      coarse, fine: include the coarse / fine noise.
      noise_gradient: ``"grid"`` (default) or ``"none"``; see the module docstring.
    """

    def __init__(self, surface, seed: int = 0, coarse: bool = True, fine: bool = True,
                 noise_gradient: str = "grid"):
        self.surface = get(surface) if isinstance(surface, str) else surface
        if noise_gradient not in NOISE_GRADIENTS:
            raise ValueError(f"noise_gradient must be one of {NOISE_GRADIENTS}, got {noise_gradient!r}")
        self.seed, self.coarse, self.fine, self.noise_gradient = int(seed), bool(coarse), bool(fine), noise_gradient
        w = self.surface.half_width
        self.coords = grid_coordinates(w)
        self.spacing = 2.0 * w / GRID
        r, c = noise_fields(self.seed, w)
        self.noise = (self.surface.coarse_weight * r * self.coarse) + (self.surface.fine_weight * c * self.fine)
        if noise_gradient == "grid":
            self.noise_dy, self.noise_dx = np.gradient(self.noise, self.spacing)
        else:
            self.noise_dy = self.noise_dx = np.zeros_like(self.noise)
        self._tf_tables = {}

    @property
    def name(self) -> str:
        return self.surface.name

    @property
    def bounds(self) -> tuple:
        return (-self.surface.half_width, self.surface.half_width)

    def grid_index(self, x, y):
        """Nearest grid indices ``(iy, ix)`` of points (clipped to the grid)."""
        w = self.surface.half_width

        def cell(coordinate):  # NaN (a diverged run) reads cell 0; its loss is NaN anyway
            index = np.rint((np.asarray(coordinate, np.float64) + w) / self.spacing)
            return np.clip(np.nan_to_num(index, nan=0.0), 0, GRID - 1).astype(int)

        return cell(y), cell(x)

    def value(self, x, y) -> np.ndarray:
        """The surface (with its noise) at points, in float64."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        iy, ix = self.grid_index(x, y)
        return self.surface.smooth(x, y, np) + self.noise[iy, ix]

    def grid_values(self):
        """``(X, Y, Z)`` on the whole grid, for plotting."""
        X, Y = np.meshgrid(self.coords, self.coords)
        return X, Y, self.surface.smooth(X, Y, np) + self.noise

    # --- TensorFlow ----------------------------------------------------------

    def _tables(self, dtype):
        import tensorflow as tf

        key = tf.as_dtype(dtype).name
        if key not in self._tf_tables:
            with tf.init_scope():  # eager tensors, reusable by every traced step
                self._tf_tables[key] = tuple(tf.constant(a, dtype=dtype)
                                             for a in (self.noise, self.noise_dx, self.noise_dy))
        return self._tf_tables[key]

    def tf_loss(self, point):
        """The surface at ``point`` (a length-2 tensor or variable) as a TF scalar.

        Differentiable: autodiff of the smooth part plus the noise gradient
        chosen by ``noise_gradient``.
        """
        import tensorflow as tf

        point = tf.convert_to_tensor(point)
        noise, noise_dx, noise_dy = self._tables(point.dtype)
        w = self.surface.half_width

        @tf.custom_gradient
        def noise_at(p):
            cell = tf.clip_by_value(tf.round((tf.cast(p, tf.float64) + w) / self.spacing), 0, GRID - 1)
            cell = tf.where(tf.math.is_nan(cell), tf.zeros_like(cell), cell)  # a diverged run
            iy_ix = tf.cast(tf.reverse(cell, [0]), tf.int32)

            def grad(upstream):
                return upstream * tf.stack([tf.gather_nd(noise_dx, iy_ix), tf.gather_nd(noise_dy, iy_ix)])

            return tf.gather_nd(noise, iy_ix), grad

        return self.surface.smooth(point[0], point[1], tf.math) + noise_at(point)
