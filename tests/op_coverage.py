"""``pytest --require-every-op``: fails unless the tests call every op of the
loaded op library.

CI runs a part of the suite against the Bazel build of the op library
(.ci/bazel); this makes sure that part still reaches every op as ops are
added. An op counts as called when its Python wrapper (from
``tf.load_op_library``) builds it into a graph or runs it eagerly.
"""

from __future__ import annotations

import pytest

# Ops (by their Python wrapper) no test on a machine without a GPU can call, and why.
GPU_ONLY = {
    "kerasopt_pack_handles": "packs the slot handles of GPU variables for the multi-tensor ops",
}


class OpCoverage:
    """Counts the calls of every op wrapper of the loaded library.

    tf.load_op_library gives each op one wrapper, named after the op in
    snake case (KerasoptApplyRAdam: kerasopt_apply_r_adam), and an
    ``_eager_fallback`` that only the wrapper calls.
    """

    def __init__(self, library):
        if not library.loaded:
            raise pytest.UsageError(f"--require-every-op: the op library did not load: {library.error}")
        self.path = library.path
        self.calls = {}
        for attr in dir(library.ops):
            if attr.startswith("kerasopt_") and not attr.endswith("_eager_fallback"):
                self.calls[attr] = 0
                setattr(library.ops, attr, self._counting(attr, getattr(library.ops, attr)))
        if not self.calls:
            raise pytest.UsageError(f"--require-every-op: {self.path} has no kerasopt ops")

    def _counting(self, name, wrapper):
        def counted(*args, **kwargs):
            self.calls[name] += 1
            return wrapper(*args, **kwargs)

        return counted

    def missing(self) -> list[str]:
        return sorted(name for name, n in self.calls.items() if n == 0 and name not in GPU_ONLY)

    def pytest_sessionfinish(self, session, exitstatus):
        if self.missing() and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        missing = self.missing()
        called = sum(1 for n in self.calls.values() if n)
        terminalreporter.write_line(
            f"--require-every-op: {called} of the {len(self.calls)} ops of {self.path} called"
            + "".join(f"; {name} not expected ({why})" for name, why in GPU_ONLY.items()
                      if name in self.calls and not self.calls[name]))
        if missing:
            terminalreporter.write_line(
                "--require-every-op: FAILED, never called: " + ", ".join(missing), red=True)
