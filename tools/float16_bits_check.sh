#!/bin/sh
# Builds and runs tools/float16_bits_check.cc: the CPU drivers' 16-bit float
# conversions against Eigen's on every input (about a minute on two cores).
#   tools/float16_bits_check.sh [PYTHON]   (an interpreter with TensorFlow, for Eigen's headers)
set -e
cd "$(dirname "$0")/.."
python=${1:-python3}
include=$("$python" -c "import tensorflow as tf; print(tf.sysconfig.get_include())" 2>/dev/null)
out=build/float16_bits_check
mkdir -p build
# The math flags of the op library (cc/compile_flags.bzl, plain Python literals).
copts=$("$python" -c 'exec(open("cc/compile_flags.bzl").read()); print(" ".join(COPTS))')
g++ -std=c++17 $copts -pthread -I. -I"$include" tools/float16_bits_check.cc -o "$out"
"$out"
