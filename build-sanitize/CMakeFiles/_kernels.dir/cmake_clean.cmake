file(REMOVE_RECURSE
  "CMakeFiles/_kernels.dir/cc/python/adadelta_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/adadelta_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/adagrad_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/adagrad_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/adam_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/adam_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/adamax_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/adamax_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/adamw_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/adamw_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/ftrl_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/ftrl_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/kernels_module.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/kernels_module.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/lamb_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/lamb_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/lion_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/lion_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/nadam_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/nadam_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/rmsprop_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/rmsprop_binding.cc.o.d"
  "CMakeFiles/_kernels.dir/cc/python/sgd_binding.cc.o"
  "CMakeFiles/_kernels.dir/cc/python/sgd_binding.cc.o.d"
  "_kernels.cpython-311-x86_64-linux-gnu.so"
  "_kernels.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/_kernels.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
