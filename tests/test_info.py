"""`python -m kerasopt info`: the schema, and that it reports what is really there."""

import json
import os
import subprocess
import sys

import pytest

import kerasopt
from kerasopt import info
from kerasopt.optimizers import ALL, AWAITING_KERNELS


def test_collect_reports_every_optimizer_with_its_cpu_kernel():
    report = info.collect()
    assert isinstance(report["tensorflow"], str) and isinstance(report["keras"], str)
    assert report["load_error"] is None
    assert report["op_library"].endswith(".so")
    assert set(report["algorithms"]) == {cls.__name__ for cls in ALL + AWAITING_KERNELS}
    for name, paths in report["algorithms"].items():
        assert set(paths) >= {"cpu", "gpu", "sparse", "multi_tensor"}
        # Every class in ALL has its CPU kernel; those awaiting theirs show none.
        assert paths["cpu"] is (name in {cls.__name__ for cls in ALL}), name
        assert paths["fallback"] is True


def test_unknown_op_names_are_reported_absent(monkeypatch):
    # The flags come from TensorFlow's kernel registry, not from a table.
    monkeypatch.setattr(kerasopt.Adam, "kernel_name", "NoSuchAlgorithm")
    assert info.collect()["algorithms"]["Adam"]["cpu"] is False


def test_cli_json_matches_schema(tmp_path):
    out = subprocess.run(
        [sys.executable, "-P", "-m", "kerasopt", "info", "--json"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    report = json.loads(out)
    assert set(report) >= {"tensorflow", "keras", "op_library", "load_error", "algorithms"}
    assert report["algorithms"]["Adam"]["cpu"] is True


def test_cli_table_names_the_library_or_the_reason(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERASOPT_OPS_LIBRARY": str(tmp_path / "missing.so")}
    out = subprocess.run([sys.executable, "-P", "-m", "kerasopt", "info"], capture_output=True,
                         text=True, check=True, cwd=tmp_path, env=env).stdout
    assert "op library not loaded" in out and "missing.so" in out


def test_gpu_sparse_and_multi_columns_follow_the_cuda_build():
    from kerasopt import op_library

    lib = op_library.library()
    built = lib.loaded and op_library.read_cuda_built_with(lib.path) is not None
    report = info.collect()["algorithms"]
    for name, paths in report.items():
        assert set(paths) >= {"gpu_sparse", "gpu_multi_tensor"}
        # A GPU form needs the GPU dense kernel and the CPU form of the path.
        assert paths["gpu_sparse"] <= (paths["gpu"] and paths["sparse"]), name
        assert paths["gpu_multi_tensor"] <= (paths["gpu"] and paths["multi_tensor"]), name
    assert report["Adam"]["gpu_sparse"] == built
    assert report["Adam"]["gpu_multi_tensor"] == built
    assert report["Lamb"]["gpu_multi_tensor"] == built  # per-variable launches in one op
    assert report["Lamb"]["gpu_sparse"] is False  # norms: no sparse form
    for name in ("Yogi", "NovoGrad", "Lars"):  # no sparse op at all; multi-tensor on the GPU
        assert report[name]["gpu_sparse"] is False, name
        assert report[name]["gpu_multi_tensor"] == built, name
    assert report["Shampoo"]["gpu"] is False  # matrix roots: CPU only


def test_fallback_column_is_measured(monkeypatch):
    """The fallback column runs a step on the composed-TF path; it is not a constant."""
    def broken(self, *args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(kerasopt.Adam, "apply_fallback", broken)
    report = info.collect()
    assert report["algorithms"]["Adam"]["fallback"] is False
    assert report["algorithms"]["SGD"]["fallback"] is True
    assert all(w["fallback"] for w in report["wrappers"].values())


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """`python -m kerasopt info` as a user runs it (TF_CPP_MIN_LOG_LEVEL unset),
    once for the tests of its output."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-P", "-m", "kerasopt", "info"], capture_output=True,
                          text=True, check=True, cwd=tmp_path_factory.mktemp("info"), env=env)


def test_cli_prints_no_tensorflow_log_lines(plain_run):
    assert plain_run.stderr == "", plain_run.stderr[:500]


def test_gpu_columns_say_built_not_tested(plain_run):
    assert "whether it has run on a GPU is not shown" in " ".join(plain_run.stdout.split())
