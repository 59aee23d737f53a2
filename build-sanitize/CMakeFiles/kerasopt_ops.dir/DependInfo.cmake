
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/wt-8/cc/tf/adadelta_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adadelta_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adadelta_op.cc.o.d"
  "/work/wt-8/cc/tf/adagrad_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adagrad_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adagrad_op.cc.o.d"
  "/work/wt-8/cc/tf/adam_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adam_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adam_op.cc.o.d"
  "/work/wt-8/cc/tf/adamax_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adamax_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adamax_op.cc.o.d"
  "/work/wt-8/cc/tf/adamw_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adamw_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/adamw_op.cc.o.d"
  "/work/wt-8/cc/tf/build_marker.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/build_marker.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/build_marker.cc.o.d"
  "/work/wt-8/cc/tf/ftrl_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/ftrl_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/ftrl_op.cc.o.d"
  "/work/wt-8/cc/tf/lamb_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/lamb_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/lamb_op.cc.o.d"
  "/work/wt-8/cc/tf/lion_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/lion_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/lion_op.cc.o.d"
  "/work/wt-8/cc/tf/nadam_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/nadam_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/nadam_op.cc.o.d"
  "/work/wt-8/cc/tf/rmsprop_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/rmsprop_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/rmsprop_op.cc.o.d"
  "/work/wt-8/cc/tf/sgd_op.cc" "CMakeFiles/kerasopt_ops.dir/cc/tf/sgd_op.cc.o" "gcc" "CMakeFiles/kerasopt_ops.dir/cc/tf/sgd_op.cc.o.d"
  )

# Targets to which this target links which contain Fortran sources.
set(CMAKE_Fortran_TARGET_LINKED_INFO_FILES
  )

# Targets to which this target links which contain Fortran sources.
set(CMAKE_Fortran_TARGET_FORWARD_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
