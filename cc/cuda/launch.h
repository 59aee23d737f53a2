// The boundary between the TensorFlow ops (compiled by the host compiler with
// TensorFlow's headers) and the CUDA drivers (compiled by nvcc without them).
//
// Nothing here includes TensorFlow or CUDA headers: the ops pass raw device
// pointers, sizes and TensorFlow's own stream for the op (a cudaStream_t, as
// void*), and get back nullptr or an error message. This keeps the nvcc side
// independent of the CUDA version TensorFlow's wheel was built with.
//
// Launchers are templates over a rule's declaration (cc/kernels/declaration.h,
// called Spec here), declared here and explicitly instantiated once per
// declared rule in its generated cc/cuda/rule_launchers.cu.cc.in.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cc/kernels/common.h"
#include "cc/kernels/declaration.h"
#include "cc/kernels/norm_stages.h"

namespace kerasopt {
namespace cuda {

// Storage types, with the layouts of Eigen::half and tensorflow::bfloat16
// (IEEE binary16 and the top half of a float32).
enum class DType { kHalf, kBfloat16, kFloat, kDouble };

constexpr int kMaxSlots = 4;
constexpr int kMaxScalars = 8;
constexpr int kMaxFlags = 4;

// The op's inputs as the device sees them. Hyperparameters and the step stay
// in device memory: each launch builds its rule on the device from them, so
// an update needs no device-to-host copy and no host sync.
struct RuleInputs {
  const double* learning_rate;         // the op's float64 `learning_rate`
  const int64_t* step;                 // the op's int64 `step`
  const double* scalars[kMaxScalars];  // the rule's float64 scalar inputs, in declared order
  bool flags[kMaxFlags];               // the rule's bool attrs, in declared order
  int num_slots;                       // slot resources passed to the op
  bool optional_slot;                  // whether the rule's optional slot was passed
};

// The drivers a declared rule runs with (cc/kernels/declaration.h's Driver).
template <typename Spec>
constexpr bool kWithNorms = Spec::kDriver == Driver::kWithNorms;
template <typename Spec>
constexpr bool kInputNorms =
    Spec::kDriver == Driver::kAfterNorms || Spec::kDriver == Driver::kLayerwise;
template <typename Spec, typename Rule>
using InputNormsStage = typename NormStageFor<Spec::kDriver, Rule>::type;

struct DenseArgs {
  void* stream;  // cudaStream_t of the op's device context
  int64_t n;     // elements of the variable
  void* var;
  void* slots[kMaxSlots];  // in the rule's slot order; nullptr: absent
  const void* grad;
  void* scratch;  // DenseScratchBytes<Spec>(dtype, n) bytes of device memory
  RuleInputs inputs;
};

// Runs Spec's rule over a dense variable on `args.stream`. Returns nullptr
// once the work is queued, or why it could not be.
template <typename Spec>
const char* LaunchDense(DType dtype, const DenseArgs& args);

// --- multi-tensor updates (for the KerasoptMultiApply<Algo> ops) --------------
//
// One variable of a multi-tensor update (device pointers; slots as in
// DenseArgs). All variables share the dtype, the rule's inputs and the stream.
struct TensorPointers {
  int64_t n;
  void* var;
  void* slots[kMaxSlots];
  const void* grad;
};

struct MultiArgs {
  void* stream;
  int num_tensors;
  const TensorPointers* tensors;  // host array of num_tensors entries
  RuleInputs inputs;              // num_slots: slots per variable
};

// Runs Spec's per-element rule over every variable in a few launches: the
// variables are cut into chunks of kMultiChunk elements, and each launch takes
// up to kMultiBatchChunks chunks of up to kMultiBatchTensors variables, its
// pointer table passed by value (no host-to-device copy). Same results as
// LaunchDense per variable. (Rules with norms need a per-variable reduction;
// they are not covered yet: static_assert.)
template <typename Spec>
const char* LaunchMultiDense(DType dtype, const MultiArgs& args);

constexpr int64_t kMultiChunk = 1 << 16;
constexpr int kMultiBatchTensors = 32;
constexpr int kMultiBatchChunks = 256;

// --- sparse row updates (for the KerasoptSparseApply<Algo> ops) ---------------
//
// `var` and its slots are [num_rows, row_size]; the gradient is `grad`
// [num_indices, row_size] with `indices` [num_indices] (int32 or int64), as in
// tf.IndexedSlices. Duplicate indices are summed first, in position order, in
// the compute type (as the CPU's cc/cpu/apply_sparse.h does): the positions are
// sorted by (row, position) on the device, and one warp per distinct row sums
// its gradient rows and runs the rule, so rows never race and the result does
// not depend on the launch. An index outside [0, num_rows) stops the update
// before anything is written; the op reports it with FetchBadIndex
// (a device-to-host read, the one sync of the sparse path).
struct SparseArgs {
  void* stream;
  int64_t num_rows;
  int64_t row_size;
  void* var;
  void* slots[kMaxSlots];
  const void* grad;
  const void* indices;
  bool indices_are_int64;
  int64_t num_indices;
  void* scratch;  // SparseScratchBytes(num_indices, num_rows) bytes of device memory
  RuleInputs inputs;
};

// Scratch for the sort and the index check (CUB's temporary storage included).
int64_t SparseScratchBytes(int64_t num_indices, int64_t num_rows);

// Sorts the positions by row and checks the indices (algorithm-independent;
// LaunchSparse calls it first).
const char* PrepareSparse(const SparseArgs& args);

template <typename Spec>
const char* LaunchSparse(DType dtype, const SparseArgs& args);

// After LaunchSparse: waits for `stream` and sets *position to the first
// position of an out-of-range index and *index to that index, or both to -1
// when every index was in range.
const char* FetchBadIndex(const SparseArgs& args, int64_t* position, int64_t* index);

// Device-to-device copy on `stream` (a variable's copy-on-write).
const char* CopyDeviceToDevice(void* stream, void* dst, const void* src, size_t bytes);

// --- Scratch sizes (host-side arithmetic, shared by op and driver) -----------

// Rules with per-variable norms (LAMB, LARS, NovoGrad) reduce in fixed chunks
// of kNormChunk elements, whatever the grid: one double partial sum per chunk
// and norm.
constexpr int64_t kNormChunk = 512;

KERASOPT_HOST_DEVICE int64_t ComputeBytes(DType dtype) { return dtype == DType::kDouble ? 8 : 4; }
KERASOPT_HOST_DEVICE int64_t StorageBytes(DType dtype) {
  return dtype == DType::kDouble ? 8 : dtype == DType::kFloat ? 4 : 2;
}

KERASOPT_HOST_DEVICE int64_t AlignUp(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Scratch layout for a rule with norms: [partials | finish area | carried term]
// (the finish area: LAMB's step, or the bound rule of LARS and NovoGrad).
template <typename Spec>
struct NormScratch {
  KERASOPT_HOST_DEVICE static int64_t NumChunks(int64_t n) { return (n + kNormChunk - 1) / kNormChunk; }
  KERASOPT_HOST_DEVICE static int64_t PartialsBytes(int64_t n, int num_norms) {
    return AlignUp(NumChunks(n) * num_norms * 8);
  }
  KERASOPT_HOST_DEVICE static constexpr int64_t FinishBytes() { return 256; }  // step or bound rule
  KERASOPT_HOST_DEVICE static int64_t CarriedBytes(DType dtype, int64_t n) {
    // 16-bit storage rounds the slots, so pass 2 cannot recompute pass 1's
    // term from them: pass 1 keeps it in compute precision.
    return StorageBytes(dtype) == ComputeBytes(dtype) ? 0 : AlignUp(n * ComputeBytes(dtype));
  }
};

template <typename Spec>
int64_t DenseScratchBytes(DType dtype, int64_t n) {
  using S = NormScratch<Spec>;
  if constexpr (kWithNorms<Spec>) {
    constexpr int kNorms = Spec::template Rule<float>::kNumNorms;
    return S::PartialsBytes(n, kNorms) + S::FinishBytes() + S::CarriedBytes(dtype, n);
  } else if constexpr (kInputNorms<Spec>) {
    constexpr int kNorms = InputNormsStage<Spec, typename Spec::template Rule<float>>::kNumNorms;
    return S::PartialsBytes(n, kNorms) + S::FinishBytes();
  } else {
    return 0;
  }
}

}  // namespace cuda
}  // namespace kerasopt
