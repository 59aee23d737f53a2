#!/usr/bin/env bash
# Memory safety: builds the pybind11 kernel module (kerasopt._kernels, the same
# C++ rules and CPU driver as the TensorFlow ops) with AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs the tests that drive it under them.
#
#   tools/sanitize.sh [PYTHON] [-- extra pytest arguments]
#
# PYTHON: an interpreter with kerasopt installed (editable or not) and the
# test extra (default: .venv/bin/python); pybind11 is pip-installed into it
# if missing. Needs cmake and g++ (libasan, libubsan). The sanitized module is built in
# build-sanitize/ (CMake, one job unless CMAKE_BUILD_PARALLEL_LEVEL says
# otherwise) and put in place of kerasopt._kernels for that run only: the
# installed package is not touched. libasan is preloaded because the Python
# interpreter itself is not instrumented. Any sanitizer report fails the run
# (halt_on_error, no recovery from UB).
#
# What runs: tests/test_properties.py (random shapes, values with inf/NaN/
# subnormals, hyperparameters; more examples than the default profile), the
# split-into-pieces determinism test, and the NumPy-binding tests of the
# per-algorithm test files (-k binding/pybind). The TensorFlow op library is
# not instrumented: it shares the rules and drivers checked here, and
# TensorFlow itself is not built for sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-.venv/bin/python}
shift || true
[ "${1:-}" = "--" ] && shift
PYTHON=$(command -v "$PYTHON")
BUILD=build-sanitize
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-1}

# pybind11's CMake files (a build requirement, so absent from a plain install).
if ! "$PYTHON" -c "import pybind11" 2>/dev/null; then
  "$PYTHON" -m pip install -q "pybind11>=2.12"
fi

SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
# KERASOPT_CUDA=OFF: only the NumPy module is built here; it has no CUDA code.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DKERASOPT_CUDA=OFF \
  -DPython_EXECUTABLE="$PYTHON" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" \
  -DCMAKE_CXX_FLAGS="$SANITIZE" \
  -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$BUILD" --target _kernels
MODULE=$(ls "$BUILD"/_kernels*.so)
if ! nm -D "$MODULE" | grep __asan_init >/dev/null; then  # (not -q: SIGPIPE under pipefail)
  echo "sanitize: $MODULE is not instrumented" >&2
  exit 1
fi

LIBASAN=$(g++ -print-file-name=libasan.so)
LIBUBSAN=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
# The interpreter and TensorFlow are not instrumented: no leak report for
# them, and no ODR/allocator-mismatch noise from their libraries.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-sanitize}
export KERASOPT_SANITIZED_KERNELS="$PWD/$MODULE"

echo "sanitize: running the kernel tests against $MODULE"
"$PYTHON" -P - "$@" <<'EOF'
import importlib.util
import os
import sys

import kerasopt

# Load the instrumented module as kerasopt._kernels before any test imports it.
path = os.environ["KERASOPT_SANITIZED_KERNELS"]
spec = importlib.util.spec_from_file_location("kerasopt._kernels", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["kerasopt._kernels"] = module
kerasopt._kernels = module

import pytest

sys.exit(pytest.main([
    "-q", "-p", "no:cacheprovider", "tests/test_properties.py",
    "tests/test_determinism.py::test_split_into_pieces_gives_the_bits_of_one_pass",
    "tests/test_errors.py", "-k", "properties or pieces or pybind or binding or Binding",
    *sys.argv[1:],
]))
EOF
