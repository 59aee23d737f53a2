"""SOAP against Shampoo on tests/test_second_order.py's ill-conditioned least-squares
problem: steps to cut the loss by 1e4 for each (beta_1, beta_2) pair, the same
pair for both (SOAP's Adam; Shampoo's grafted Adam), each at its best learning
rate of a grid. docs/second-order.md#soap has a run's table and what it shows.

    .venv/bin/python tools/soap_vs_shampoo.py --seeds 0 1
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

import kerasopt  # noqa: E402
from test_second_order import least_squares_problem, steps_to_target  # noqa: E402


def shampoo(beta_1, beta_2, lr):
    return kerasopt.Shampoo(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, block_size=16,
                            precondition_frequency=5, start_preconditioning_step=1,
                            epsilon=1e-10)


def soap(beta_1, beta_2, lr):
    return kerasopt.SOAP(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=1e-10,
                         block_size=16, precondition_frequency=5, weight_decay=None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--betas", nargs="+",
                        default=["0.5,0.999", "0.8,0.999", "0.9,0.999", "0.5,0.95",
                                 "0.8,0.95", "0.9,0.95", "0.95,0.95"],
                        help="beta_1,beta_2 pairs")
    parser.add_argument("--rates", type=float, nargs="+",
                        default=[0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0])
    parser.add_argument("--max-steps", type=int, default=300)
    args = parser.parse_args(argv)
    print(f"steps to 1e-4 of the initial loss (at most {args.max_steps}), best of learning "
          f"rates {args.rates}")
    for pair in args.betas:
        beta_1, beta_2 = (float(b) for b in pair.split(","))
        for seed in args.seeds:
            problem = least_squares_problem(seed=seed)
            cells = []
            for name, make in (("Shampoo", shampoo), ("SOAP", soap)):
                steps = [steps_to_target(make(beta_1, beta_2, lr), problem, 1e-4,
                                         args.max_steps) for lr in args.rates]
                best = min(steps)
                cells.append(f"{name} {best if best < args.max_steps else '-':>4} "
                             f"(lr {args.rates[steps.index(best)]:g})")
            print(f"betas {beta_1:g}, {beta_2:g}  seed {seed}:  " + "   ".join(cells),
                  flush=True)


if __name__ == "__main__":
    main()
