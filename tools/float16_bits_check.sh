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
# The math flags of the op library (CMakeLists.txt).
g++ -std=c++17 -O3 -ffp-contract=off -fno-math-errno -fno-trapping-math -pthread -I. -I"$include" \
  tools/float16_bits_check.cc -o "$out"
"$out"
