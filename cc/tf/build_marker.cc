// Records, inside the library file itself, the TensorFlow version it was
// compiled against. kerasopt's loader reads this string from the file *before*
// loading it, and refuses a library built for another TensorFlow release
// instead of letting a C++ ABI mismatch crash the process.
#ifndef KERASOPT_TF_VERSION
#error "Define KERASOPT_TF_VERSION to the TensorFlow version being built against."
#endif

extern "C" __attribute__((used, visibility("default")))
const char kerasopt_build_marker[] =
    "KERASOPT_BUILT_FOR_TENSORFLOW=" KERASOPT_TF_VERSION ";";
