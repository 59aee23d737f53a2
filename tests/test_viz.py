"""kerasopt.viz: surfaces, trajectories (kernel path), figures, the quadratic
study, the MNIST race's definitions (on a tiny synthetic race) and the CLI."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kerasopt
from kerasopt import _kernels
from kerasopt.viz import cli, quadratic, race, specs, surfaces, trajectories
from conftest import require_kernel_library

# --- surfaces ------------------------------------------------------------------


@pytest.mark.parametrize("name, x, y, want", [
    ("f0", 3.0, 4.0, 0.25),
    ("f1", 0.0, 0.0, (0.06 - 0.1) / 400),
    ("f1", 2.0, -1.0, (4 + 1 - 0.5 + 0.06 * 27 + 0.1 * -8) / 400),
    ("f2", 2.0, 1.0, 1.5 / 40),
    ("f3", 2.0, 1.0, 0.0),
    ("f3", 4.0, -2.0, (8 - 2 + 6) / 60),
    ("f4", 0.0, 0.0, 0.5),
    ("f4", 5 * math.pi / 2, 0.0, 0.0),
    ("f5", 8.0, 12.0, 1.0),
    ("rosenbrock", 1.0, 1.0, 0.0),
    ("rosenbrock", 0.0, 0.0, 1.0),
    ("beale", 3.0, 0.5, 0.0),
    ("saddle", 0.0, 0.0, 0.0),
    ("saddle", 0.0, math.sqrt(50), -0.5),
])
def test_surface_values_without_noise(name, x, y, want):
    landscape = surfaces.Landscape(name, coarse=False, fine=False)
    assert landscape.value(x, y) == pytest.approx(want, abs=1e-12)
    got = landscape.tf_loss(tf.constant([x, y], tf.float64))
    assert float(got) == pytest.approx(want, abs=1e-12)


def test_bilinear_resize_matches_tensorflow():
    field = np.random.default_rng(3).standard_normal((25, 25))
    want = tf.image.resize(field[..., None], (200, 200), method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(surfaces.bilinear_resize(field, 200), want, atol=2e-6)  # TF resizes in float32


def test_noise_follows_the_recipe_at_grid_points():
    """Coarse: 25×25 normals resized; fine: 200×200 normals × |x||y|/100; nearest grid point."""
    seed = 7
    rng = np.random.default_rng(seed)
    coarse = surfaces.bilinear_resize(rng.standard_normal((25, 25)), 200)
    fine = rng.standard_normal((200, 200))
    landscape = surfaces.Landscape("f0", seed=seed)
    h = 0.1
    for iy, ix in [(0, 0), (57, 131), (100, 100), (199, 3), (123, 199)]:
        x, y = -10 + ix * h, -10 + iy * h
        want = (x / 10) ** 2 + (y / 10) ** 2 + 0.04 * coarse[iy, ix] + 0.01 * fine[iy, ix] * abs(x) * abs(y) / 100
        assert landscape.value(x, y) == pytest.approx(want, abs=1e-12)
        # Anywhere within half a cell reads the same grid point's noise.
        smooth = lambda px, py: (px / 10) ** 2 + (py / 10) ** 2  # noqa: E731
        near = (x + 0.4 * h, y - 0.45 * h)
        assert landscape.value(*near) - smooth(*near) == pytest.approx(want - smooth(x, y), abs=1e-12)
    # The fine noise vanishes on the axes; outside the square the edge's noise is used.
    only_fine = surfaces.Landscape("f0", seed=seed, coarse=False)
    assert only_fine.value(0.0, 7.3) == pytest.approx((7.3 / 10) ** 2, abs=1e-15)
    assert only_fine.value(5.0, 7.3) != pytest.approx((5.0 / 10) ** 2 + (7.3 / 10) ** 2, abs=1e-6)
    assert landscape.value(25.0, -30.0) - (2.5 ** 2 + 3 ** 2) == pytest.approx(
        landscape.value(9.9, -10.0) - (0.99 ** 2 + 1.0), abs=1e-12)
    # Same seed, same noise; another seed, other noise.
    assert landscape.value(3.3, 4.4) == surfaces.Landscape("f0", seed=seed).value(3.3, 4.4)
    assert landscape.value(3.3, 4.4) != surfaces.Landscape("f0", seed=seed + 1).value(3.3, 4.4)


def test_tf_loss_value_and_gradient():
    landscape = surfaces.Landscape("f0", seed=1)
    point = tf.Variable([3.26, -7.81], dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = landscape.tf_loss(point)
    grad = tape.gradient(loss, point).numpy()
    assert float(loss) == pytest.approx(landscape.value(3.26, -7.81), abs=1e-12)
    iy, ix = landscape.grid_index(3.26, -7.81)
    assert (int(iy), int(ix)) == (22, 133)
    want = np.array([2 * 3.26 / 100 + landscape.noise_dx[iy, ix], 2 * -7.81 / 100 + landscape.noise_dy[iy, ix]])
    np.testing.assert_allclose(grad, want, rtol=1e-12)
    # Central differences of the noise field on the grid.
    assert landscape.noise_dx[iy, ix] == pytest.approx(
        (landscape.noise[iy, ix + 1] - landscape.noise[iy, ix - 1]) / 0.2, rel=1e-12)
    # "none": the noise shows in the loss only (the tutorial's behaviour).
    plain = surfaces.Landscape("f0", seed=1, noise_gradient="none")
    with tf.GradientTape() as tape:
        loss = plain.tf_loss(point)
    np.testing.assert_allclose(tape.gradient(loss, point).numpy(), [0.0652, -0.1562], rtol=1e-12)


def test_surface_errors():
    with pytest.raises(ValueError, match="surface must be one of"):
        surfaces.Landscape("f9")
    with pytest.raises(ValueError, match="noise_gradient"):
        surfaces.Landscape("f0", noise_gradient="exact")


# --- optimizer specs -------------------------------------------------------------


def test_specs_parse_and_errors():
    spec = specs.parse("Adam:learning_rate=0.1, amsgrad=True")
    optimizer = spec.build()
    assert isinstance(optimizer, kerasopt.Adam) and optimizer.amsgrad
    assert float(optimizer.learning_rate) == pytest.approx(0.1)
    assert spec.label == "Adam(learning_rate=0.1, amsgrad=True)"
    with pytest.raises(ValueError, match="unknown optimizer 'nosuch'.*adam"):
        specs.parse("nosuch")
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        specs.parse("adam:0.1")
    with pytest.raises(ValueError, match="'Adam\\(beta_3=1\\)'"):
        specs.parse("adam:beta_3=1")
    with pytest.raises(ValueError, match="learning_rate"):
        specs.parse("sgd:learning_rate=-1")


def test_specs_follow_kerasopt_optimizers_all(monkeypatch):
    """An optimizer added to kerasopt.optimizers.ALL is usable without changes here."""
    import kerasopt.optimizers

    class Brandnew(kerasopt.SGD):
        pass

    monkeypatch.setattr(kerasopt.optimizers, "ALL", kerasopt.optimizers.ALL + (Brandnew,))
    assert isinstance(specs.parse("brandnew:learning_rate=0.5").build(), Brandnew)
    assert "Brandnew" in [s.label for s in race.default_specs()]


def test_every_optimizer_skips_what_cannot_be_built(monkeypatch):
    import kerasopt.optimizers

    class NeedsInner(kerasopt.SGD):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)

    monkeypatch.setattr(kerasopt.optimizers, "ALL", kerasopt.optimizers.ALL + (NeedsInner,))
    every = specs.every_optimizer(learning_rate=0.5)
    classes = [s.cls for s in every]
    assert NeedsInner not in classes and kerasopt.Adam in classes and kerasopt.Lamb in classes
    assert all(float(s.build().learning_rate) == 0.5 for s in every)


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    from kerasopt.viz import _mpl

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"pip install 'kerasopt\[viz\]'"):
        _mpl.figure((2, 2))


def test_learning_rate_sweep():
    swept = trajectories.learning_rate_sweep("sgd:momentum=0.9", [0.1, 1.0])
    assert [s.label for s in swept] == ["SGD lr=0.1", "SGD lr=1"]
    built = swept[1].build()
    assert built.momentum == 0.9 and float(built.learning_rate) == 1.0
    with pytest.raises(ValueError, match="learning_rates"):
        trajectories.learning_rate_sweep("sgd", [-1.0])


# --- trajectories: the real kernels ---------------------------------------------------


def test_trajectory_runs_the_fused_kernel_and_matches_pybind():
    """Each step's update is the fused op: replaying the recorded gradients
    through the pybind kernels reproduces the points bit for bit."""
    require_kernel_library()
    landscape = surfaces.Landscape("f4", seed=0)
    start = landscape.surface.start
    adam = trajectories.run(landscape, "adam:learning_rate=0.3", start, 6)
    sgd = trajectories.run(landscape, "sgd:learning_rate=5,momentum=0.9,nesterov=True", start, 6)
    assert adam.kernel_ops == ("KerasoptMultiApplyAdam",)
    assert sgd.kernel_ops == ("KerasoptMultiApplySGD",)
    assert adam.points.shape == (7, 2) and adam.gradients.shape == (6, 2) and adam.losses.shape == (7,)
    np.testing.assert_allclose(adam.losses, landscape.value(adam.points[:, 0], adam.points[:, 1]))

    w, m, v = np.array(start, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
    for t, g in enumerate(adam.gradients, start=1):
        _kernels.adam(w, g.astype(np.float32), m, v, learning_rate=0.3, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7, step=t)
        np.testing.assert_array_equal(w, adam.points[t].astype(np.float32))
    w, m = np.array(start, np.float32), np.zeros(2, np.float32)
    for t, g in enumerate(sgd.gradients, start=1):
        _kernels.sgd(w, g.astype(np.float32), m, learning_rate=5.0, momentum=0.9, nesterov=True)
        np.testing.assert_array_equal(w, sgd.points[t].astype(np.float32))
    # The gradient each step used is the surface's at the point it started from.
    for t in (0, 3):
        point = tf.constant(adam.points[t], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(point)
            loss = landscape.tf_loss(point)
        np.testing.assert_allclose(tape.gradient(loss, point).numpy(), adam.gradients[t], rtol=1e-6)


def test_trajectory_argument_errors():
    landscape = surfaces.Landscape("f0")
    with pytest.raises(ValueError, match="start"):
        trajectories.run(landscape, "adam", (1.0, float("nan")), 3)
    with pytest.raises(ValueError, match="steps"):
        trajectories.run(landscape, "adam", (1.0, 2.0), -1)


# --- figures ------------------------------------------------------------------------


def test_png_and_gif_files(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from kerasopt.viz import plots

    landscape = surfaces.Landscape("f5", seed=0)
    runs = trajectories.run_all(landscape, ["adam:learning_rate=1", "sgd:learning_rate=1000"], (9.0, 9.0), 4,
                                implementation="auto")
    png = plots.save_surface_png(landscape, runs, tmp_path / "f5.png", title="f5")
    gif = plots.save_surface_gif(landscape, runs, tmp_path / "f5.gif", max_frames=3)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 3
    assert os.path.getsize(png) > 10_000 and os.path.getsize(gif) > 1_000


# --- quadratic study ------------------------------------------------------------------


def test_quadratic_study_measured_contraction_equals_theory():
    require_kernel_library()
    problem = quadratic.Quadratic()
    runs = {r.method.name: r for r in quadratic.study(problem, steps=25)}
    assert list(runs) == ["too small", "optimal", "oscillating", "divergent", "diagonal precond.",
                          "ideal precond. Q⁻¹"]
    for run in runs.values():
        assert run.kernel_ops == ("KerasoptMultiApplySGD",)
        np.testing.assert_allclose(run.components.sum(axis=1), run.losses, rtol=1e-10, atol=1e-25)
        np.testing.assert_allclose(run.measured, run.theory, rtol=0, atol=1e-9, err_msg=run.method.name)

    optimal = runs["optimal"]
    assert optimal.method.learning_rate == np.float32(2 / (2 + 12))  # Hessian 2Q: curvatures 2, 12; float32 lr
    np.testing.assert_allclose(optimal.theory, [5 / 7, -5 / 7], rtol=1e-6)
    assert np.all(np.abs(runs["too small"].theory) > np.abs(optimal.theory))
    assert runs["oscillating"].theory[1] == pytest.approx(-0.9) and runs["oscillating"].losses[-1] < 1.0
    assert runs["divergent"].theory[1] == pytest.approx(-1.1)
    assert runs["divergent"].losses[-1] > runs["divergent"].losses[0]
    # Jacobi preconditioning lowers the condition number (6 → about 2.1) and so the contraction.
    diag = runs["diagonal precond."]
    assert diag.mu.max() / diag.mu.min() < 2.2
    assert np.max(np.abs(diag.theory)) < np.max(np.abs(optimal.theory))
    # Q⁻¹ (αP = H⁻¹): the minimum in one step, up to rounding.
    ideal = runs["ideal precond. Q⁻¹"]
    np.testing.assert_allclose(ideal.theory, [0.0, 0.0], atol=1e-15)
    assert ideal.losses[1] < 1e-28 * ideal.losses[0]
    # The predicted loss after all steps is what was measured.
    for name in ("too small", "optimal", "oscillating", "divergent", "diagonal precond."):
        assert runs[name].losses[-1] == pytest.approx(runs[name].predicted_final_loss, rel=1e-8)
    text = quadratic.report(problem, runs.values())
    assert "theory 1−αμ" in text and "measured" in text and "divergent" in text


def test_quadratic_errors():
    with pytest.raises(ValueError, match="eigenvalues"):
        quadratic.Quadratic(eigenvalues=(1.0, -6.0))
    with pytest.raises(ValueError, match="steps"):
        quadratic.run_method(quadratic.Quadratic(), quadratic.standard_methods(quadratic.Quadratic())[0], 0)


# --- race -----------------------------------------------------------------------------


def test_race_loss_is_cross_entropy_over_ten():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 6)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(6), labels].mean()
    assert float(race.race_loss(tf.constant(logits), tf.constant(labels))) == pytest.approx(cross_entropy / 10,
                                                                                            rel=1e-6)
    uniform = race.race_loss(tf.zeros((3, 10)), tf.constant([0, 4, 9]))
    assert float(uniform) == pytest.approx(math.log(10) / 10, rel=1e-6)


def test_first_step_below():
    assert race.first_step_below([0.3, 0.2, 0.15, 0.149, 0.1]) == 4  # strictly below, 1-based
    assert race.first_step_below([0.3, np.nan, 0.2]) is None
    assert race.first_step_below([0.1]) == 1
    assert race.first_step_below([0.5, 0.4], threshold=0.45) == 2


def test_default_race_specs():
    labels = [s.label for s in race.default_specs()]
    for spec in specs.every_optimizer():  # every optimizer that can be built with its defaults
        assert spec.cls.__name__ in labels
    # Adagrad's default learning rate is already 1e-3: not run twice.
    assert "SGD(learning_rate=0.001)" in labels and "SGD(learning_rate=0.001, momentum=0.9)" in labels
    assert "Adagrad(learning_rate=0.001)" not in labels


def _synthetic_digits(n, seed):
    """Ten well-separated classes in 784 dimensions, so a few steps make progress."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = np.random.default_rng(99).uniform(0, 1, (10, 784)).astype(np.float32)
    return centres[labels] + 0.1 * rng.standard_normal((n, 784)).astype(np.float32), labels


def test_tiny_race_is_repeatable(tmp_path):
    require_kernel_library()
    x_train, y_train = _synthetic_digits(300, 1)
    x_val, y_val = _synthetic_digits(100, 2)
    config = race.RaceConfig(steps=6, batch_size=32, val_size=64, hidden=(16,), threshold=0.2, seed=5)
    chosen = ["adam:learning_rate=0.01", "sgd:learning_rate=0.001"]
    first = race.run_race(chosen, config, (x_train, y_train, x_val, y_val))
    again = race.run_race(chosen, config, (x_train, y_train, x_val, y_val))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.val_losses, b.val_losses)
        np.testing.assert_array_equal(a.train_losses, b.train_losses)
    adam, sgd = first
    assert adam.kernel_ops == ("KerasoptMultiApplyAdam",) and sgd.kernel_ops == ("KerasoptMultiApplySGD",)
    assert adam.val_losses.shape == (6,) and adam.val_losses[-1] < adam.val_losses[0]
    assert adam.first_below == race.first_step_below(adam.val_losses, 0.2)
    # Both runs start from the same weights: the first batch's loss is the same.
    assert adam.train_losses[0] == sgd.train_losses[0]
    text = race.table(first, config)
    assert "| optimizer | first step < 0.2 |" in text and "`Adam(learning_rate=0.01)`" in text
    race.save_json(first, config, tmp_path / "race.json")
    loaded, loaded_config = race.load_json(tmp_path / "race.json")
    assert loaded_config == config and [r.label for r in loaded] == [r.label for r in first]
    np.testing.assert_allclose(loaded[0].val_losses, adam.val_losses, rtol=1e-5)
    with pytest.raises(ValueError, match="val_size"):
        race.run_race(chosen, race.RaceConfig(steps=1, val_size=1000), (x_train, y_train, x_val, y_val))


def test_readme_table_replacement():
    readme = f"intro\n{cli.README_BEGIN}\nold table\n{cli.README_END}\nrest\n"
    updated = cli.replace_readme_table(readme, "| new |\n")
    assert "old table" not in updated and "| new |" in updated and updated.endswith(f"{cli.README_END}\nrest\n")
    with pytest.raises(ValueError, match="markers"):
        cli.replace_readme_table("no markers", "x")


# --- command line ----------------------------------------------------------------------


def _cli(tmp_path, *args):
    # -P and a temporary cwd: the installed kerasopt, not the source tree.
    return subprocess.run([sys.executable, "-P", "-m", "kerasopt.viz", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_cli_subprocess(tmp_path):
    pytest.importorskip("matplotlib")
    done = _cli(tmp_path, "surface", "--surface", "f0", "--steps", "3", "-o", "adam:learning_rate=0.5",
                "-o", "sgd:learning_rate=10", "--png", "f0.png", "--gif", "f0.gif", "--frames", "3")
    assert done.returncode == 0, done.stderr
    assert "KerasoptMultiApplyAdam" in done.stdout and "final loss" in done.stdout
    assert (tmp_path / "f0.png").stat().st_size > 0 and (tmp_path / "f0.gif").stat().st_size > 0


def test_cli_bad_arguments(capsys):
    for argv, message in [(["sweep", "-o", "nosuch"], "unknown optimizer 'nosuch'"),
                          (["surface", "--surface", "f9"], "choose from f0, f1"),
                          (["surface", "-o", "adam:learning_rate=-1"], "learning_rate")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_quadratic_and_race_in_process(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    require_kernel_library()
    assert cli.main(["quadratic", "--steps", "5", "--png", str(tmp_path / "q.png")]) == 0
    out = capsys.readouterr().out
    assert "ideal precond." in out and "measured" in out and (tmp_path / "q.png").stat().st_size > 0
    x, y = _synthetic_digits(100, 3)
    config = race.RaceConfig(steps=3, batch_size=8, val_size=16, hidden=(4,))
    race.save_json(race.run_race(["lion"], config, (x, y, x, y)), config, tmp_path / "r.json")
    assert cli.main(["race", "--from-json", str(tmp_path / "r.json"), "--table", str(tmp_path / "r.md"),
                     "--png", str(tmp_path / "r.png")]) == 0
    assert "`Lion`" in (tmp_path / "r.md").read_text() and (tmp_path / "r.png").stat().st_size > 0
    assert cli.main(["race", "--from-json", str(tmp_path / "missing.json")]) == 1
