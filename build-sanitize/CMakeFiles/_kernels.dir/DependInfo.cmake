
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt-8/cc/python/adadelta_binding.cc" "CMakeFiles/_kernels.dir/cc/python/adadelta_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/adadelta_binding.cc.o.d"
  "/work/wt-8/cc/python/adagrad_binding.cc" "CMakeFiles/_kernels.dir/cc/python/adagrad_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/adagrad_binding.cc.o.d"
  "/work/wt-8/cc/python/adam_binding.cc" "CMakeFiles/_kernels.dir/cc/python/adam_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/adam_binding.cc.o.d"
  "/work/wt-8/cc/python/adamax_binding.cc" "CMakeFiles/_kernels.dir/cc/python/adamax_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/adamax_binding.cc.o.d"
  "/work/wt-8/cc/python/adamw_binding.cc" "CMakeFiles/_kernels.dir/cc/python/adamw_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/adamw_binding.cc.o.d"
  "/work/wt-8/cc/python/ftrl_binding.cc" "CMakeFiles/_kernels.dir/cc/python/ftrl_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/ftrl_binding.cc.o.d"
  "/work/wt-8/cc/python/kernels_module.cc" "CMakeFiles/_kernels.dir/cc/python/kernels_module.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/kernels_module.cc.o.d"
  "/work/wt-8/cc/python/lamb_binding.cc" "CMakeFiles/_kernels.dir/cc/python/lamb_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/lamb_binding.cc.o.d"
  "/work/wt-8/cc/python/lion_binding.cc" "CMakeFiles/_kernels.dir/cc/python/lion_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/lion_binding.cc.o.d"
  "/work/wt-8/cc/python/nadam_binding.cc" "CMakeFiles/_kernels.dir/cc/python/nadam_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/nadam_binding.cc.o.d"
  "/work/wt-8/cc/python/rmsprop_binding.cc" "CMakeFiles/_kernels.dir/cc/python/rmsprop_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/rmsprop_binding.cc.o.d"
  "/work/wt-8/cc/python/sgd_binding.cc" "CMakeFiles/_kernels.dir/cc/python/sgd_binding.cc.o" "gcc" "CMakeFiles/_kernels.dir/cc/python/sgd_binding.cc.o.d"
  )

# Targets to which this target links which contain Fortran sources.
set(CMAKE_Fortran_TARGET_LINKED_INFO_FILES
  )

# Targets to which this target links which contain Fortran sources.
set(CMAKE_Fortran_TARGET_FORWARD_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
