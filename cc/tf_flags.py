"""Prints what CMake needs to compile against the installed TensorFlow."""
import tensorflow as tf

print(tf.__version__)
print(tf.sysconfig.get_include())
print(" ".join(tf.sysconfig.get_compile_flags()))
print(" ".join(tf.sysconfig.get_link_flags()))
