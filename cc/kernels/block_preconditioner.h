// The block structure shared by full-matrix AdaGrad and Shampoo.
//
// A variable is viewed as a row-major (rows x cols) matrix G and cut into
// tiles of block_rows x block_cols (the last tiles zero-padded). Each tile k
// keeps its own statistics and preconditioners:
//
//   L_k += G_k G_k^T                       (block_rows x block_rows)
//   R_k += G_k^T G_k                       (block_cols x block_cols; Shampoo only)
//   D_k  = L_k^{-1/p} G_k [R_k^{-1/p}]     (roots from matrix_root.h, recomputed
//                                           only on the steps that ask for it)
//
// Full-matrix AdaGrad is the case cols = 1 (the flattened variable cut into
// blocks of block_size coordinates) with p = 2 and no R. Shampoo (Gupta, Koren
// & Singer 2018, Algorithm 1) has p = 4 on both sides. The zero padding is
// exact: padded rows and columns of G_k are zero, so they add nothing to L_k or
// R_k and the roots' padded part only ever multiplies zeros.
#pragma once

#include <algorithm>
#include <cstdint>

#include "Eigen/Core"
#include "cc/kernels/block_layout.h"
#include "cc/kernels/matrix_root.h"

namespace kerasopt {

template <typename C>
using BlockMatrix = Eigen::Matrix<C, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename C>
using BlockMap = Eigen::Map<BlockMatrix<C>>;

// Tile k of the row-major matrix `g` (rows x cols), zero-padded, in type C.
template <typename C, typename T>
void GatherBlock(const BlockLayout& l, int64_t k, const T* g, BlockMatrix<C>* out) {
  out->setZero(l.block_rows, l.block_cols);
  const int64_t r0 = (k / l.col_blocks) * l.block_rows;
  const int64_t c0 = (k % l.col_blocks) * l.block_cols;
  const int64_t nr = std::min(l.block_rows, l.rows - r0);
  const int64_t nc = std::min(l.block_cols, l.cols - c0);
  for (int64_t r = 0; r < nr; ++r) {
    for (int64_t c = 0; c < nc; ++c) {
      (*out)(r, c) = static_cast<C>(g[(r0 + r) * l.cols + c0 + c]);
    }
  }
}

// Writes the unpadded part of tile k into the row-major matrix `dst`.
template <typename C>
void ScatterBlock(const BlockLayout& l, int64_t k, const BlockMatrix<C>& tile, C* dst) {
  const int64_t r0 = (k / l.col_blocks) * l.block_rows;
  const int64_t c0 = (k % l.col_blocks) * l.block_cols;
  const int64_t nr = std::min(l.block_rows, l.rows - r0);
  const int64_t nc = std::min(l.block_cols, l.cols - c0);
  for (int64_t r = 0; r < nr; ++r) {
    for (int64_t c = 0; c < nc; ++c) dst[(r0 + r) * l.cols + c0 + c] = tile(r, c);
  }
}

// The statistics and preconditioners of one tile (right ones null for
// full-matrix AdaGrad), each a row-major square matrix in type C.
template <typename C>
struct TileState {
  C* left_statistics;
  C* left_preconditioner;
  C* right_statistics;      // nullptr: no right side
  C* right_preconditioner;  // nullptr: no right side
};

// L += G G^T (and R += G^T G).
template <typename C>
void AccumulateStatistics(const BlockMatrix<C>& g, const TileState<C>& s) {
  const int64_t m = g.rows(), n = g.cols();
  BlockMap<C>(s.left_statistics, m, m).noalias() += g * g.transpose();
  if (s.right_statistics != nullptr) {
    BlockMap<C>(s.right_statistics, n, n).noalias() += g.transpose() * g;
  }
}

// Preconditioners from the statistics: (L + eps I)^{-1/p} (and the same of R).
template <typename C>
void RecomputePreconditioners(int64_t m, int64_t n, int p, double epsilon,
                              const TileState<C>& s) {
  MatrixInverseRoot(s.left_statistics, m, p, epsilon, s.left_preconditioner);
  if (s.right_statistics != nullptr) {
    MatrixInverseRoot(s.right_statistics, n, p, epsilon, s.right_preconditioner);
  }
}

// D = L^{-1/p} G (R^{-1/p}) with the stored preconditioners.
template <typename C>
void Precondition(const BlockMatrix<C>& g, const TileState<C>& s, BlockMatrix<C>* d) {
  const int64_t m = g.rows(), n = g.cols();
  const BlockMatrix<C> left_applied = BlockMap<C>(s.left_preconditioner, m, m) * g;
  if (s.right_preconditioner != nullptr) {
    d->noalias() = left_applied * BlockMap<C>(s.right_preconditioner, n, n);
  } else {
    *d = left_applied;
  }
}

}  // namespace kerasopt
