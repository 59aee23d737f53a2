"""python -m kerasopt.bench on its smallest case: every column runs, does the
same steps as Keras, and the JSON report says so (times are not checked)."""

import json

import pytest

from kerasopt.bench import steps as bench

from conftest import require_kernel_library

TF_COLUMNS = "keras,kernel,kernel_1,tf,raw"


def _run(tmp_path, *extra):
    path = tmp_path / "bench.json"
    code = bench.main(["--cases", "a", "--algorithms", "adam,lamb", "--repeats", "2",
                       "--warmup", "1", "--columns", TF_COLUMNS, "--json", str(path), *extra])
    assert code == 0
    return json.loads(path.read_text())


def _by_column(document, algorithm):
    return {r["column"]: r for r in document["results"] if r["algorithm"] == algorithm}


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_bench_columns_do_the_same_steps(tmp_path, capsys, steps_per_call):
    require_kernel_library()
    document = _run(tmp_path, "--steps-per-call", str(steps_per_call))
    assert document["settings"]["steps_per_call"] == steps_per_call

    adam = _by_column(document, "adam")
    assert set(adam) == set(TF_COLUMNS.split(","))
    for result in adam.values():
        assert result["error"] is None, result
        assert len(result["times_ms"]) == 2
        assert result["median_ms"] > 0 and result["gbps"] > 0
    # kerasopt's kernels and its fallback give Keras's float32 weights exactly,
    # after the same number of steps (steps_per_call per call).
    for column in ("kernel", "kernel_1", "tf"):
        assert adam[column]["max_abs_diff_vs_keras"] == 0.0, column
    assert adam["raw"]["max_abs_diff_vs_keras"] < 1e-5  # TF's op adds epsilon elsewhere
    assert adam["kernel"]["kerasopt_ops"] == 1
    assert adam["tf"]["kerasopt_ops"] == 0
    assert adam["keras"]["speedup_vs_keras"] == pytest.approx(1.0)

    # Keras has LAMB (raw op: none): the kernel matches it to rounding.
    lamb = _by_column(document, "lamb")
    assert lamb["kernel"]["error"] is None
    assert lamb["kernel"]["max_abs_diff_vs_keras"] < 1e-6
    assert "no TensorFlow op" in lamb["raw"]["error"]

    out = capsys.readouterr().out
    assert "kerasopt is faster than" in out
    if steps_per_call > 1:
        assert f"{steps_per_call} steps per call" in out


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--steps-per-call", "0"])
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--cases", "z"])


@pytest.mark.parametrize("column", ["keras", "kernel", "raw"])
def test_runner_makes_steps_per_call_steps(column):
    """Each timed call makes steps_per_call steps (a raw column has no optimizer:
    its weights are compared with Keras's after the same calls instead)."""
    require_kernel_library()
    import numpy as np
    import tensorflow as tf

    columns = {c.key: c for c in bench.COLUMNS}
    initial, gradients = bench.torch_child.case_arrays([5, 7], seed=1)
    gradients = [tf.constant(g) for g in gradients]
    runners = [bench._Runner(columns[key], bench.ALGORITHMS["adam"], initial, gradients, k)
               for key, k in ((column, 3), ("keras", 1))]
    for _ in range(2):
        assert runners[0].call() > 0
    for _ in range(6):
        runners[1].call()
    if column != "raw":
        assert int(runners[0].optimizer.iterations.numpy()) == 6
    for got, want in zip(runners[0].weights(), runners[1].weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_recommender_fit_bench_runs(monkeypatch, capsys):
    """The --fit recommender on tiny tables: every configuration runs, the
    targets are reported, and each result carries its step times."""
    require_kernel_library()
    from rich.console import Console

    from kerasopt.bench import recommender

    monkeypatch.setitem(recommender.VARIANTS, "recommender", (2, 500))
    results = recommender.run(Console(width=200), "recommender", rounds=2, chunk=2, warmup=1,
                              keras_steps=3)
    titles = {r["config"] for r in results}
    assert titles == {"Keras Adagrad", "kerasopt Adagrad", "Keras Ftrl", "kerasopt Ftrl",
                      "Keras Adam", "kerasopt Adam(lazy=True)", "Keras Adam(global_clipnorm=1.0)",
                      "kerasopt Adam(lazy=True, global_clipnorm=1.0)", recommender.FROZEN,
                      recommender.FORWARD_BACKWARD}
    by_config = {r["config"]: r for r in results}
    assert len(by_config[recommender.FROZEN]["times_ms"]) == 4 * 2 * 2  # shared by 4 configs
    assert len(by_config["kerasopt Ftrl"]["times_ms"]) == 2 * 2
    assert len(by_config["kerasopt Ftrl"]["frozen_beside_ms"]) == 2 * 2
    assert len(by_config["Keras Ftrl"]["times_ms"]) == 3
    out = capsys.readouterr().out
    assert out.count("target: ") == len(recommender.TARGETS)
    assert "tables frozen" in out and "forward+backward only" in out
