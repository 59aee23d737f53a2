"""Written by the build (cc/build_info.py.in), next to the compiled parts.

The op library carries its own record of the TensorFlow it was built for
(cc/tf/build_marker.cc); this module only tells the loader where it is.
"""

OPS_LIBRARY = "_kerasopt_ops.so"
BUILT_WITH_TENSORFLOW = "2.21.0"
