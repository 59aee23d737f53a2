// Pass 1 of a block-preconditioned step (preconditioned_apply_op.h), compiled
// once in precondition_blocks.cc for every dtype rather than in each rule's
// ops: per tile of `layout`, over TensorFlow's thread pool, accumulate the
// tile's statistics of g, recompute their inverse p-th roots when
// `recompute`, and write the preconditioned direction D into `direction`
// (null: none). `matrices` are the rule's first 2 * sides slots: left
// statistics, [right statistics], left preconditioner, [right
// preconditioner], each [num_blocks, b, b] in type C.
#pragma once

#include <cstdint>

#include "cc/kernels/block_layout.h"
#include "tensorflow/core/platform/threadpool.h"

namespace kerasopt {
namespace tf {

template <typename C, typename T>
void PreconditionBlocks(const BlockLayout& layout, const T* g, C* const* matrices, int sides,
                        int p, double epsilon, bool recompute, C* direction,
                        ::tensorflow::thread::ThreadPool* pool);

}  // namespace tf
}  // namespace kerasopt
