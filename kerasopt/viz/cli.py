"""``python -m kerasopt.viz {surface,sweep,quadratic,race,gallery} ...``

Every command runs the real kerasopt optimizers (``--implementation kernel``
by default: the fused ops, or an error saying why they cannot run). Optimizers
are given as ``NAME[:KEY=VALUE,...]`` with a kerasopt class name, e.g.
``--optimizer adam:learning_rate=0.1 --optimizer sgd:learning_rate=10,momentum=0.9``.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter out of reports

README_BEGIN = "<!-- race-table:begin (python -m kerasopt.viz gallery --readme docs/viz.md) -->"
README_END = "<!-- race-table:end -->"


def _spec(text):
    from kerasopt.viz import specs

    try:
        return specs.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _surface_name(text):
    from kerasopt.viz import surfaces

    if text not in surfaces.SURFACES:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(surfaces.SURFACES)}")
    return text


def _add_landscape_args(p):
    p.add_argument("--surface", type=_surface_name, default="f4", help="f0..f5, rosenbrock, beale, saddle")
    p.add_argument("--start", type=float, nargs=2, metavar=("X", "Y"), help="default: the surface's own")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--no-coarse", action="store_true", help="leave out the coarse noise")
    p.add_argument("--no-fine", action="store_true", help="leave out the fine noise")
    p.add_argument("--noise-gradient", choices=("grid", "none"), default="grid",
                   help="grid: optimizers feel the noise (central differences); none: only the loss shows it")
    p.add_argument("--png", help="still image to write")
    p.add_argument("--gif", help="animated GIF to write")
    p.add_argument("--dpi", type=int, default=70, help="of the PNG")
    p.add_argument("--frames", type=int, default=60, help="most GIF frames")


def _add_common(p):
    p.add_argument("--implementation", choices=("kernel", "auto", "tf"), default="kernel",
                   help="kerasopt update path (default kernel: the fused ops)")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m kerasopt.viz", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("surface", help="optimizers over a test surface: 3-D, contour, loss vs step")
    _add_landscape_args(p)
    p.add_argument("--optimizer", "-o", type=_spec, action="append", default=[], metavar="SPEC",
                   help="repeatable; default: every kerasopt optimizer at --learning-rate")
    p.add_argument("--learning-rate", type=float, default=0.1, help="for the default optimizer list")
    _add_common(p)

    p = sub.add_parser("sweep", help="one optimizer at several learning rates over a surface")
    _add_landscape_args(p)
    p.add_argument("--optimizer", "-o", type=_spec, default="adam", metavar="SPEC")
    p.add_argument("--learning-rates", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0, 10.0])
    _add_common(p)

    p = sub.add_parser("quadratic", help="gradient descent on xᵀQx: theory beside measurement")
    p.add_argument("--eigenvalues", type=float, nargs=2, default=[1.0, 6.0])
    p.add_argument("--angle", type=float, default=None, help="rotation in radians (default π/16)")
    p.add_argument("--start", type=float, nargs=2, default=[9.5, -1.0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--png", help="figure to write")
    p.add_argument("--dpi", type=int, default=80)
    _add_common(p)

    p = sub.add_parser("race", help="the MNIST convergence race")
    p.add_argument("--optimizer", "-o", type=_spec, action="append", default=[], metavar="SPEC",
                   help="repeatable; default: every kerasopt optimizer + SGD, Adagrad, momentum 0.9 at lr 1e-3")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-json", help="redraw from a saved run instead of running")
    p.add_argument("--json", help="save the curves here")
    p.add_argument("--table", help="write the Markdown table here")
    p.add_argument("--png", help="plot of the curves")
    p.add_argument("--dpi", type=int, default=80)
    _add_common(p)

    p = sub.add_parser("gallery", help="regenerate the README images and race table")
    p.add_argument("--out-dir", default=os.path.join("docs", "images"))
    p.add_argument("--race-json", default=None,
                   help="reuse this saved race (from race --json) instead of running the race (~1 h on 2 cores)")
    p.add_argument("--race-steps", type=int, default=1000)
    p.add_argument("--readme", help="also replace the race table between the markers in this README")
    _add_common(p)
    return parser


# --- commands ------------------------------------------------------------------


def _landscape(args):
    from kerasopt.viz import surfaces

    return surfaces.Landscape(args.surface, seed=args.seed, coarse=not args.no_coarse,
                              fine=not args.no_fine, noise_gradient=args.noise_gradient)


def _draw_trajectories(args, landscape, trajectories, title):
    from kerasopt.viz import plots

    for t in trajectories:
        ops = ", ".join(t.kernel_ops) or "no kerasopt op (fallback)"
        print(f"{t.label:<40} final loss {t.final_loss:12.6g}   at ({t.points[-1, 0]:.4g}, "
              f"{t.points[-1, 1]:.4g})   [{ops}]")
    if not args.png and not args.gif:
        args.png = f"{landscape.name}.png"
    if args.png:
        print("wrote", plots.save_surface_png(landscape, trajectories, args.png, title=title, dpi=args.dpi))
    if args.gif:
        print("wrote", plots.save_surface_gif(landscape, trajectories, args.gif, title=title,
                                              max_frames=args.frames))


def _start(args, landscape):
    return tuple(args.start) if args.start else landscape.surface.start


def cmd_surface(args):
    from kerasopt.viz import specs, trajectories

    landscape = _landscape(args)
    chosen = args.optimizer or specs.every_optimizer(learning_rate=args.learning_rate)
    runs = trajectories.run_all(landscape, chosen, _start(args, landscape), args.steps,
                                implementation=args.implementation)
    _draw_trajectories(args, landscape, runs, f"{landscape.name} = {landscape.surface.formula} + noise")
    return 0


def cmd_sweep(args):
    from kerasopt.viz import trajectories

    landscape = _landscape(args)
    chosen = trajectories.learning_rate_sweep(args.optimizer, args.learning_rates)
    runs = trajectories.run_all(landscape, chosen, _start(args, landscape), args.steps,
                                implementation=args.implementation)
    _draw_trajectories(args, landscape, runs,
                       f"{chosen[0].cls.__name__} learning rates on {landscape.name} = {landscape.surface.formula}")
    return 0


def cmd_quadratic(args):
    import math

    from kerasopt.viz import _mpl, quadratic

    problem = quadratic.Quadratic(tuple(args.eigenvalues), math.pi / 16 if args.angle is None else args.angle,
                                  tuple(args.start))
    runs = quadratic.study(problem, args.steps, implementation=args.implementation)
    print(quadratic.report(problem, runs))
    if args.png:
        print("wrote", _mpl.save_png(quadratic.figure(problem, runs), args.png, args.dpi))
    return 0


def _race(steps, seed, optimizer_specs, implementation, json_path=None):
    from kerasopt.viz import race

    config = race.RaceConfig(steps=steps, seed=seed)
    results = race.run_race(optimizer_specs or None, config, implementation=implementation,
                            progress=lambda line: print(line, flush=True))
    if json_path:
        race.save_json(results, config, json_path)
        print("wrote", json_path)
    return results, config


def cmd_race(args):
    from kerasopt.viz import _mpl, race

    if args.from_json:
        results, config = race.load_json(args.from_json)
    else:
        results, config = _race(args.steps, args.seed, args.optimizer, args.implementation, args.json)
    text = race.table(results, config)
    print(text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)
    if args.png:
        print("wrote", _mpl.save_png(race.figure(results, config), args.png, args.dpi))
    return 0


def replace_readme_table(readme: str, table: str) -> str:
    """The README text with the block between the race-table markers replaced."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README has no race-table markers ({README_BEGIN} ... {README_END})")
    return readme[: begin + len(README_BEGIN)] + "\n\n" + table + "\n" + readme[end:]


def cmd_gallery(args):
    from kerasopt.viz import _mpl, plots, quadratic, race, surfaces, trajectories

    os.makedirs(args.out_dir, exist_ok=True)
    out = lambda name: os.path.join(args.out_dir, name)  # noqa: E731
    impl = args.implementation

    f1 = surfaces.Landscape("f1", seed=0)
    runs = trajectories.run_all(f1, GALLERY_OPTIMIZERS, f1.surface.start, 100, implementation=impl)
    print("wrote", plots.save_surface_png(f1, runs, out("f1-optimizers.png"),
                                          title=f"f1 = {f1.surface.formula} + noise"))

    f4 = surfaces.Landscape("f4", seed=0)
    sweep = trajectories.learning_rate_sweep("adam", [0.01, 0.1, 0.3, 1.0, 3.0])
    runs = trajectories.run_all(f4, sweep, f4.surface.start, 100, implementation=impl)
    print("wrote", plots.save_surface_png(f4, runs, out("f4-adam-sweep.png"),
                                          title=f"Adam learning rates on f4 = {f4.surface.formula} + noise"))

    problem = quadratic.Quadratic()
    runs = quadratic.study(problem, 30, implementation=impl)
    print(quadratic.report(problem, runs))
    print("wrote", _mpl.save_png(quadratic.figure(problem, runs), out("quadratic.png")))

    if args.race_json and os.path.exists(args.race_json):
        results, config = race.load_json(args.race_json)
    else:
        results, config = _race(args.race_steps, 0, [], impl,
                                args.race_json or os.path.join(os.path.dirname(args.out_dir) or ".", "race.json"))
    text = race.table(results, config)
    print(text)
    print("wrote", _mpl.save_png(race.figure(results, config), out("race.png")))
    table_path = os.path.join(os.path.dirname(args.out_dir) or ".", "race.md")
    with open(table_path, "w") as f:
        f.write(text)
    print("wrote", table_path)
    if args.readme:
        with open(args.readme) as f:
            updated = replace_readme_table(f.read(), text)
        with open(args.readme, "w") as f:
            f.write(updated)
        print("updated", args.readme)
    return 0


GALLERY_OPTIMIZERS = (
    "sgd:learning_rate=20",
    "sgd:learning_rate=2,momentum=0.9",
    "rmsprop:learning_rate=0.1",
    "adam:learning_rate=0.3",
    "adagrad:learning_rate=1",
    "lion:learning_rate=0.1",
)

COMMANDS = {"surface": cmd_surface, "sweep": cmd_sweep, "quadratic": cmd_quadratic,
            "race": cmd_race, "gallery": cmd_gallery}


def main(argv=None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, RuntimeError, ImportError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
