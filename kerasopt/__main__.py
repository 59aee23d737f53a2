"""`python -m kerasopt info [--json]`: what kerasopt has on this machine."""

import os
import sys

# TensorFlow's start-up chatter would drown the report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"info": "kerasopt.info"}
    if not argv or argv[0] not in commands:
        print("usage: python -m kerasopt info [--json]\n"
              "       python -m kerasopt.bench [--help]", file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
