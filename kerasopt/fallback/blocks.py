"""Block layout of full-matrix AdaGrad and Shampoo, and its tiles as TF ops.

A variable is viewed as a (rows x cols) matrix and cut into tiles of
block_rows x block_cols, zero-padded at the edges (cc/kernels/block_preconditioner.h
documents the math; the padding is exact). Full-matrix AdaGrad views the
flattened variable as one column; Shampoo views shape [..., n] as
[prod(...), n].
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class BlockLayout:
    rows: int
    cols: int
    block_rows: int
    block_cols: int

    @property
    def row_blocks(self) -> int:
        return math.ceil(self.rows / self.block_rows)

    @property
    def col_blocks(self) -> int:
        return math.ceil(self.cols / self.block_cols)

    @property
    def num_blocks(self) -> int:
        return self.row_blocks * self.col_blocks

    @property
    def left_shape(self) -> tuple:
        return (self.num_blocks, self.block_rows, self.block_rows)

    @property
    def right_shape(self) -> tuple:
        return (self.num_blocks, self.block_cols, self.block_cols)


def full_matrix_layout(shape, block_size: int) -> BlockLayout:
    """The flattened variable as a column, in blocks of up to block_size coordinates."""
    size = math.prod(shape)
    return BlockLayout(size, 1, max(1, min(size, block_size)), 1)


def matrix_view(shape) -> tuple:
    """Shape [..., n] (rank >= 2) as a [prod(...), n] matrix."""
    cols = shape[-1]
    return (math.prod(shape[:-1]) if cols else 0), cols


def matrix_layout(shape, block_size: int) -> BlockLayout:
    """The matrix view of `shape`, each dimension in blocks of up to block_size."""
    rows, cols = matrix_view(shape)
    return BlockLayout(rows, cols, max(1, min(rows, block_size)), max(1, min(cols, block_size)))


def to_tiles(matrix, layout: BlockLayout):
    """[rows, cols] -> [num_blocks, block_rows, block_cols] (zero-padded, row-major tile order)."""
    padded = tf.pad(matrix, [[0, layout.row_blocks * layout.block_rows - layout.rows],
                             [0, layout.col_blocks * layout.block_cols - layout.cols]])
    tiles = tf.reshape(padded, [layout.row_blocks, layout.block_rows,
                                layout.col_blocks, layout.block_cols])
    return tf.reshape(tf.transpose(tiles, [0, 2, 1, 3]),
                      [layout.num_blocks, layout.block_rows, layout.block_cols])


def from_tiles(tiles, layout: BlockLayout):
    """The inverse of to_tiles: [num_blocks, br, bc] -> [rows, cols] (padding dropped)."""
    grid = tf.reshape(tiles, [layout.row_blocks, layout.col_blocks,
                              layout.block_rows, layout.block_cols])
    padded = tf.reshape(tf.transpose(grid, [0, 2, 1, 3]),
                        [layout.row_blocks * layout.block_rows,
                         layout.col_blocks * layout.block_cols])
    return padded[:layout.rows, :layout.cols]
