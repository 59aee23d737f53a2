#!/bin/sh
# Builds tools/gpu_driver_check.cu with the CUDA drivers (no TensorFlow) and
# runs it: the CUDA kernels against the CPU kernels on a real GPU.
#   tools/gpu_driver_check.sh [build-dir] [--build-only]   (nvcc; a GPU to run)
set -e
cd "$(dirname "$0")/.."
out=${1:-build/gpu_driver_check}
mkdir -p "$out"
# The build's nvcc flags (cc/compile_flags.bzl) and a launcher source per
# declared rule (cc/rules.bzl), as CMake and Bazel make them; both .bzl files
# are plain Python literals.
cuda_copts=$(python3 -c 'exec(open("cc/compile_flags.bzl").read()); print(" ".join(CUDA_COPTS))')
flags="-std=c++17 $cuda_copts -I. -diag-suppress 128 \
  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80"
python3 - "$out" <<'EOF_PY'
import sys
exec(open("cc/rules.bzl").read())
template = open("cc/cuda/rule_launchers.cu.cc.in").read()
for header, rule in RULES.items():
    with open(f"{sys.argv[1]}/{header}_launchers.cu.cc", "w") as f:
        f.write(template.replace("@RULE@", rule).replace("@HEADER@", header))
EOF_PY
objs="" pids=""
for f in cc/cuda/*.cu.cc "$out"/*_launchers.cu.cc tools/gpu_driver_check.cu; do
  o="$out/$(basename "$f").o"
  rm -f "$o"  # never link an object left from an earlier build
  nvcc $flags -x cu -c "$f" -o "$o" &
  objs="$objs $o" pids="$pids $!"
done
for pid in $pids; do wait "$pid"; done  # set -e: stops at the first failed compile
nvcc $flags $objs -o "$out/gpu_driver_check"
[ "$2" = "--build-only" ] || "$out/gpu_driver_check"
