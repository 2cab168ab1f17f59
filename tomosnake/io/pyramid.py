"""A multiscale pyramid by block mean, computed while a volume streams past slab by slab along z.

Level ``f`` has shape ``ceil(n / f)`` on every axis; each voxel is the mean of
the (up to) ``f x f x f`` voxels of its block, partial blocks at the far edges
averaging only the voxels they hold. Sums are kept in float64 and are exact to
combine, so a level is computed from the sums of a finer level whose factor
divides its own, and a block may span several slabs. Integer volumes give
integer levels (rounded to nearest). Memory: the running sums of one block
row per level plus an output buffer of ``depth`` slices per level.

(skimage's ``downscale_local_mean`` pads partial blocks with zeros and works
on whole arrays in memory, hence this small streaming version.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np


def level_shape(shape: Sequence[int], factor: int) -> tuple[int, ...]:
    return tuple(math.ceil(n / factor) for n in shape)


def _sizes(n: int, f: int) -> np.ndarray:
    """Voxels in each block of ``f`` along an axis of length ``n``."""
    return np.minimum(f, n - f * np.arange(math.ceil(n / f)))


def block_sums_yx(slab: np.ndarray, f: int) -> np.ndarray:
    """Float64 sums over ``f x f`` blocks of the last two axes (partial blocks at the edges).

    Adds the ``f * f`` strided sub-grids into the output: one pass over the data,
    some 15x faster than ``np.add.reduceat`` for f = 2 (measured, 16 x 1024 x 1023).
    """
    d, ny, nx = slab.shape
    out = np.zeros((d, math.ceil(ny / f), math.ceil(nx / f)), np.float64)
    for i in range(f):
        for j in range(f):
            part = slab[:, i::f, j::f]
            out[:, :part.shape[1], :part.shape[2]] += part
    return out


def _to_dtype(mean: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(dtype)
    return mean.astype(dtype)


class _Level:
    """Block means of one factor: z-sums carried across slabs, finished slices buffered ``depth`` at a time."""

    def __init__(self, shape: tuple[int, int, int], factor: int, dtype: np.dtype, depth: int):
        self.f, self.n_z, self.dtype = factor, shape[0], dtype
        self.shape = level_shape(shape, factor)
        self.area = np.outer(_sizes(shape[1], factor), _sizes(shape[2], factor)).astype(np.float64)
        self.acc = np.zeros(self.shape[1:], np.float64)
        self.block = 0  # output slice being accumulated
        self.depth = max(1, min(depth, self.shape[0]))
        self.buf = np.empty((self.depth, *self.shape[1:]), dtype)
        self.filled, self.buf_z0 = 0, 0

    def add(self, z0: int, sums: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Feed yx block sums of slices ``z0 .. z0 + len(sums)``; yield (level z0, block) ready to write."""
        z = z0
        while z < z0 + len(sums):
            b = z // self.f
            end = min((b + 1) * self.f, self.n_z, z0 + len(sums))
            self.acc += sums[z - z0:end - z0].sum(axis=0)
            z = end
            if end == min((b + 1) * self.f, self.n_z):  # block complete
                n_slices = end - b * self.f
                self.buf[self.filled] = _to_dtype(self.acc / (self.area * n_slices), self.dtype)
                self.acc[:] = 0
                self.filled += 1
                self.block = b + 1
                if self.filled == self.depth or self.block == self.shape[0]:
                    yield self.buf_z0, self.buf[:self.filled].copy()
                    self.buf_z0 += self.filled
                    self.filled = 0


class Pyramid:
    """Block-mean levels of a ``shape`` volume for each factor, fed slab by slab in z order."""

    def __init__(self, shape: tuple[int, int, int], factors: Sequence[int], dtype: np.dtype | str,
                 depth: int = 64):
        self.factors = sorted(set(factors))
        self.levels = {f: _Level(shape, f, np.dtype(dtype), depth) for f in self.factors}
        self.next_z = 0

    def add(self, z0: int, slab: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """Feed slices ``z0 .. z0 + len(slab)`` (consecutive calls must follow on); yield (factor, z0, block)."""
        if z0 != self.next_z:
            raise ValueError(f"pyramid fed slice {z0}, expected {self.next_z}")
        self.next_z = z0 + len(slab)
        sums: dict[int, np.ndarray] = {}
        for f in self.factors:
            finer = [g for g in sums if f % g == 0]
            if finer:  # sums of a finer level whose blocks tile this one's exactly
                g = max(finer)
                sums[f] = block_sums_yx(sums[g], f // g)
            else:
                sums[f] = block_sums_yx(slab, f)
            for lz0, block in self.levels[f].add(z0, sums[f]):
                yield f, lz0, block
