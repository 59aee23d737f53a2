# Empty dependencies file for kerasopt_ops.
# This may be replaced when dependencies are built.
