"""``python -m kerasopt.patch [--names adam,sgd] script.py args...`` (or
``-m module args...``): runs a program with Keras's optimizers patched by
kerasopt's, as ``python -m sklearnex`` does for scikit-learn. The program
runs as ``python script.py`` / ``python -m module`` would run it."""

import argparse
import os
import runpy
import sys

from kerasopt.patch import patch_keras, patchable_names


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m kerasopt.patch",
        description="Run a Python program with Keras's optimizers replaced by kerasopt's "
                    "(kerasopt.patch_keras()).")
    parser.add_argument("--names", help="comma-separated Keras optimizer names to patch "
                        f"(default: all of {','.join(patchable_names())})")
    parser.add_argument("-m", dest="module", action="store_true",
                        help="run PROGRAM as a module, as python -m does")
    parser.add_argument("program", help="the script (with -m: the module) to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments")
    options = parser.parse_args(argv)
    names = None if options.names is None else [n for n in options.names.split(",") if n]
    if not options.module and not os.path.isfile(options.program):
        parser.error(f"can't open file {options.program!r}: no such file")
    try:
        patch_keras(names)
    except ValueError as error:
        parser.error(str(error))
    sys.argv = [options.program, *options.args]
    if options.module:
        runpy.run_module(options.program, run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = os.path.dirname(os.path.abspath(options.program))
        runpy.run_path(options.program, run_name="__main__")


if __name__ == "__main__":
    main()
