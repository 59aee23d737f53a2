"""kerasopt runs on Keras's TensorFlow backend only: its updates are TensorFlow
ops (the fused kernels and the composed-TF fallback). Under another backend
(``KERAS_BACKEND=jax``, ``torch``, ``numpy``) an optimizer would be built and
then fail deep inside the first training step; this check makes constructing
one fail at once, saying why and how to switch.
"""

import keras


def require_tensorflow_backend(what: str) -> None:
    """Raises RuntimeError unless Keras runs on its TensorFlow backend."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"kerasopt.{what} needs Keras's TensorFlow backend, but Keras is running on "
            f"the '{backend}' backend. Set the environment variable "
            "KERAS_BACKEND=tensorflow before Keras is first imported (or \"backend\": "
            "\"tensorflow\" in ~/.keras/keras.json).")
