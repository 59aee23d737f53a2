"""The machine's memory bandwidth, measured as a STREAM-style triad.

``a = b + s * c`` over three float32 variables of ``n`` elements (96 MB at the
default 8M: far beyond the caches), run by the op library's ``KerasoptTriad``
op, i.e. on TensorFlow's intra-op thread pool with the same loops and
instruction set as the optimizer kernels. Counted as STREAM counts it: 12
bytes per element (read b and c, write a). The benchmark divides each
optimizer's bytes moved per second by this number ("% of triad").
"""

from __future__ import annotations

import statistics
import time


class Triad:
    """A traced triad over n float32 elements; ``call()`` times one run (seconds)."""

    BYTES_PER_ELEMENT = 12

    def __init__(self, n: int = 8_000_000):
        import numpy as np
        import tensorflow as tf

        from kerasopt import op_library

        ops = op_library.library().ops
        if ops is None or not hasattr(ops, "kerasopt_triad"):
            raise RuntimeError("the op library (KerasoptTriad) is not loaded")
        self.n = n
        rng = np.random.default_rng(0)
        a = tf.Variable(np.zeros(n, np.float32))
        b = tf.Variable(rng.standard_normal(n, dtype=np.float32))
        c = tf.Variable(rng.standard_normal(n, dtype=np.float32))
        s = tf.constant(0.5, tf.float32)

        @tf.function
        def triad():
            ops.kerasopt_triad(a=a.handle, b=b.handle, c=c.handle, s=s)
            # One element read after the op: the call returns once the triad is
            # done. (A dense read: ResourceGather would make `a` copy-on-read.)
            return tf.raw_ops.ReadVariableOp(resource=a.handle, dtype=tf.float32)[0]

        self._triad = triad
        triad().numpy()
        want = b.numpy()[:4] + np.float32(0.5) * c.numpy()[:4]
        if not np.array_equal(a.numpy()[:4], want):
            raise RuntimeError("KerasoptTriad computed the wrong values")

    def call(self) -> float:
        start = time.perf_counter()
        self._triad().numpy()
        return time.perf_counter() - start

    def gbps(self, seconds: float) -> float:
        return self.BYTES_PER_ELEMENT * self.n / seconds / 1e9


def triad_gbps(n: int = 8_000_000, repeats: int = 20, warmup: int = 3) -> float | None:
    """Median triad bandwidth in GB/s, or None when the op library is not loaded."""
    try:
        triad = Triad(n)
    except RuntimeError:
        return None
    for _ in range(warmup):
        triad.call()
    return triad.gbps(statistics.median(triad.call() for _ in range(repeats)))
