"""Device side of ``python -m kerasopt.bench --device gpu``.

An optimizer step on a GPU is bound by memory bandwidth, so the benchmark
reports each column's traffic as a share of what the device can really move:
its measured device-to-device copy bandwidth.

The copy is timed with TensorFlow ops, like the steps: a ``tf.function`` that
assigns one variable of ``nbytes`` to another (the value still belongs to its
variable, so the assignment copies it: read ``nbytes``, write ``nbytes``) and
returns one element of the destination (``.numpy()`` waits for the copy).
The bandwidth is ``2 * nbytes / median time``, as cudaMemcpy device-to-device
bandwidth is usually quoted (bytes read plus bytes written).
"""

from __future__ import annotations

import statistics
import time

DEVICES = {"cpu": "/CPU:0", "gpu": "/GPU:0"}


def check_device(device: str) -> str | None:
    """Why `device` ("cpu" or "gpu") cannot be benchmarked here, or None."""
    import tensorflow as tf

    if device == "gpu" and not tf.config.list_physical_devices("GPU"):
        return "no GPU is visible to TensorFlow"
    return None


def gpu_name() -> str | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)


def copy_bandwidth_gbps(device: str = "/GPU:0", nbytes: int = 512 << 20,
                        repeats: int = 20, warmup: int = 3) -> float:
    """Measured device-to-device copy bandwidth on `device`, in GB/s (1e9 bytes)."""
    import tensorflow as tf

    n = nbytes // 4
    with tf.device(device):
        source = tf.Variable(tf.zeros([n], tf.float32))
        target = tf.Variable(tf.ones([n], tf.float32))

        @tf.function(jit_compile=False)
        def copy():
            target.assign(source)
            return target[0]

        for _ in range(warmup):
            copy().numpy()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            copy().numpy()
            times.append(time.perf_counter() - start)
    return 2 * n * 4 / statistics.median(times) / 1e9
