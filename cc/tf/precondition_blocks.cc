// The tile pass of the block-preconditioned rules (precondition_blocks.h):
// the Eigen work (products and the roots' eigendecompositions) is
// instantiated here once per dtype.
#include "cc/tf/precondition_blocks.h"

#include "cc/kernels/block_preconditioner.h"
#include "tensorflow/core/framework/bfloat16.h"
#include "tensorflow/core/framework/numeric_types.h"

namespace kerasopt {
namespace tf {

template <typename C, typename T>
void PreconditionBlocks(const BlockLayout& layout, const T* g, C* const* matrices, int sides,
                        int p, double epsilon, bool recompute, C* direction,
                        ::tensorflow::thread::ThreadPool* pool) {
  const bool two_sided = sides == 2;
  const int64_t br = layout.block_rows, bc = layout.block_cols;
  const int64_t tile_cost =
      2 * br * bc * (br + bc) + (recompute ? 10 * (br * br * br + bc * bc * bc) : 0);
  const int64_t left_size = br * br, right_size = bc * bc;
  pool->ParallelFor(layout.num_blocks(), tile_cost, [&](int64_t begin, int64_t end) {
    BlockMatrix<C> tile, d;
    for (int64_t k = begin; k < end; ++k) {
      TileState<C> s;
      s.left_statistics = matrices[0] + k * left_size;
      s.left_preconditioner = matrices[sides] + k * left_size;
      s.right_statistics = two_sided ? matrices[1] + k * right_size : nullptr;
      s.right_preconditioner = two_sided ? matrices[3] + k * right_size : nullptr;
      GatherBlock<C>(layout, k, g, &tile);
      AccumulateStatistics(tile, s);
      if (recompute) RecomputePreconditioners(br, bc, p, epsilon, s);
      if (direction != nullptr) {
        Precondition(tile, s, &d);
        ScatterBlock(layout, k, d, direction);
      }
    }
  });
}

#define KERASOPT_PRECONDITION_BLOCKS(C, T)                                                 \
  template void PreconditionBlocks<C, T>(const BlockLayout&, const T*, C* const*, int, int, \
                                         double, bool, C*, ::tensorflow::thread::ThreadPool*);
KERASOPT_PRECONDITION_BLOCKS(float, Eigen::half)
KERASOPT_PRECONDITION_BLOCKS(float, ::tensorflow::bfloat16)
KERASOPT_PRECONDITION_BLOCKS(float, float)
KERASOPT_PRECONDITION_BLOCKS(double, double)
#undef KERASOPT_PRECONDITION_BLOCKS

}  // namespace tf
}  // namespace kerasopt
