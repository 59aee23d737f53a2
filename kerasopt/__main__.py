"""`python -m kerasopt info [--json]`: what kerasopt has on this machine."""

import sys

# (TensorFlow's start-up log lines are silenced in kerasopt/__init__.py: the
# package, and so TensorFlow, is imported before this module runs.)


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
