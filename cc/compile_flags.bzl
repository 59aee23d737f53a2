"""The compile flags of kerasopt's C++ and CUDA sources: one list for both builds.

cc/BUILD loads this file; CMakeLists.txt reads it (one quoted flag per line,
no quotes in comments).
"""

# Same rounding as TensorFlow's element-wise kernels: no fused multiply-add
# contraction, so kernel, fallback and Keras agree to the last bit in float32.
# -fno-trapping-math: no value changes (nothing reads the FP exception flags),
# but GCC may then compute both sides of a select, so branch-free loops with a
# float operation in one arm (the float16 conversions of cc/cpu/float16_bits.h)
# vectorize.
COPTS = [
    "-O3",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
]

# Speed only (CMake leaves out those the compiler lacks): GCC unswitches a
# rule's loop on its per-step flags (FTRL's power, SGD's nesterov, ...) only
# below a size limit that the bigger rules exceed; each flag combination must
# get its own loop to vectorize (cc/cpu/apply_dense.h).
# The loop of a rule with the step's features (cc/kernels/step_features.h)
# writes the weight and up to 4 slots (Adam: m, v, the scratch v_hat, the EMA
# average): GCC versions it with a run-time check per pair of arrays, 15
# there, above its default limit of 10, past which the loop stayed scalar
# (the fused Adam step 6x slower than the plain one).
TUNING_COPTS = [
    "--param=max-unswitch-insns=500",
    "--param=vect-max-version-for-alias-checks=40",
]

# nvcc: the same rounding on the device (no fused multiply-add contraction).
CUDA_COPTS = [
    "-O3",
    "--fmad=false",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-ffp-contract=off,-fno-math-errno",
]
