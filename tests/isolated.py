"""Runs Python code in a fresh interpreter: for tests that need TensorFlow
configured before it initializes (logical devices, thread counts), a fresh
process (checkpoints restored elsewhere), or several processes (workers).

The child runs ``python -P`` in a temporary directory, so it imports the
installed kerasopt (never a source tree in the working directory), and is
killed when it exceeds its timeout. Its last stdout line is JSON: the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def child_env(**extra) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("TF_CONFIG", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start(script: str, *args, cwd, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-P", "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env if env is not None else child_env(), cwd=cwd)


def finish(process: subprocess.Popen, timeout: float):
    """Waits for `process`; returns its JSON result, or fails with its stderr."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"child timed out after {timeout} s: {stderr[-3000:]}") from None
    if process.returncode != 0:
        raise AssertionError(f"child exited with {process.returncode}: {stderr[-4000:]}")
    lines = stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"child printed no result: {stderr[-3000:]}")
    return json.loads(lines[-1])


def run(script: str, *args, cwd, timeout: float = 300, env=None):
    return finish(start(script, *args, cwd=cwd, env=env), timeout)
