file(REMOVE_RECURSE
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adadelta_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adadelta_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adagrad_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adagrad_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adam_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adam_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adamax_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adamax_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adamw_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/adamw_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/build_marker.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/build_marker.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/ftrl_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/ftrl_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/lamb_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/lamb_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/lion_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/lion_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/nadam_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/nadam_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/rmsprop_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/rmsprop_op.cc.o.d"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/sgd_op.cc.o"
  "CMakeFiles/kerasopt_ops.dir/cc/tf/sgd_op.cc.o.d"
  "_kerasopt_ops.pdb"
  "_kerasopt_ops.so"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/kerasopt_ops.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
