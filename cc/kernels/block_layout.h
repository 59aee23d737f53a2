// How a preconditioned rule (block_preconditioner.h) tiles a variable: the
// variable viewed as a row-major (rows x cols) matrix, cut into tiles of
// block_rows x block_cols, the last ones zero-padded. Plain C++ (no Eigen),
// for the code that only passes layouts on.
#pragma once

#include <cstdint>

namespace kerasopt {

struct BlockLayout {
  int64_t rows = 0, cols = 0;              // the matrix view of the variable
  int64_t block_rows = 1, block_cols = 1;  // tile size (>= 1)
  int64_t row_blocks = 0, col_blocks = 0;  // tiles per dimension

  static BlockLayout Make(int64_t rows, int64_t cols, int64_t block_rows, int64_t block_cols) {
    BlockLayout l;
    l.rows = rows;
    l.cols = cols;
    l.block_rows = block_rows;
    l.block_cols = block_cols;
    l.row_blocks = (rows + block_rows - 1) / block_rows;
    l.col_blocks = (cols + block_cols - 1) / block_cols;
    return l;
  }
  int64_t num_blocks() const { return row_blocks * col_blocks; }
  int64_t size() const { return rows * cols; }
};

}  // namespace kerasopt
