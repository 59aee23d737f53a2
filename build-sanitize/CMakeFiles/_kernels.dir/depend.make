# Empty dependencies file for _kernels.
# This may be replaced when dependencies are built.
