#!/bin/sh
# Builds tools/gpu_driver_check.cu with the CUDA drivers (no TensorFlow) and
# runs it: the CUDA kernels against the CPU kernels on a real GPU.
#   tools/gpu_driver_check.sh [build-dir] [--build-only]   (nvcc; a GPU to run)
set -e
cd "$(dirname "$0")/.."
out=${1:-build/gpu_driver_check}
mkdir -p "$out"
flags="-std=c++17 -O3 --fmad=false --expt-relaxed-constexpr -I. \
  -Xcompiler=-ffp-contract=off,-fno-math-errno -diag-suppress 128 \
  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80"
objs="" pids=""
for f in cc/cuda/*.cu.cc tools/gpu_driver_check.cu; do
  o="$out/$(basename "$f").o"
  rm -f "$o"  # never link an object left from an earlier build
  nvcc $flags -x cu -c "$f" -o "$o" &
  objs="$objs $o" pids="$pids $!"
done
for pid in $pids; do wait "$pid"; done  # set -e: stops at the first failed compile
nvcc $flags $objs -o "$out/gpu_driver_check"
[ "$2" = "--build-only" ] || "$out/gpu_driver_check"
