"""Dark/flat normalisation with TomoPy ``normalize`` semantics: (p - dark) / max(flat - dark, 1e-6).

Flat only: p / flat; dark only: p - dark. The reference of each is the mean or
the median of its stack, per pixel; flats and darks may live in other files
(`RawScan` resolves that).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Step, register

FLOOR = np.float32(1e-6)  # TomoPy's smallest denominator
FRAME_BATCH_BYTES = 8 << 20  # flats and darks are reduced this many bytes of frames at a time


def rows_per_batch(n_frames: int, n_cols: int) -> int:
    """Rows of a frame stack reduced at a time."""
    return max(1, FRAME_BATCH_BYTES // max(1, n_frames * n_cols * 4))


def reduce_frames(read: Callable[[int, int], np.ndarray], r0: int, r1: int, method: str) -> np.ndarray:
    """Per-pixel mean or median over a frame stack, rows ``r0:r1``, reading a few rows at a time."""
    first = read(r0, min(r0 + 1, r1))
    n_frames, _, n_cols = first.shape
    batch = rows_per_batch(n_frames, n_cols)
    out = np.empty((r1 - r0, n_cols), dtype=np.float32)
    reduce = np.median if method == "median" else np.mean
    for a in range(r0, r1, batch):
        b = min(a + batch, r1)
        out[a - r0:b - r0] = reduce(read(a, b), axis=0)
    return out


def reference(ctx: Context, kind: str, method: str) -> np.ndarray:
    """The reduced flat or dark for the block's rows, cached for the block's row range."""
    key = (kind, method, ctx.raw_rows)
    if key not in ctx.cache:
        read = ctx.source.flats if kind == "flat" else ctx.source.darks
        ctx.cache[key] = reduce_frames(read, *ctx.raw_rows, method)
    return ctx.cache[key]


def normalize(block: np.ndarray, flat: np.ndarray | None, dark: np.ndarray | None) -> np.ndarray:
    """Flat/dark normalisation in place (references broadcast over projections)."""
    if dark is not None:
        block -= dark
    if flat is not None:
        denom = flat - dark if dark is not None else flat
        if dark is not None:
            np.maximum(denom, FLOOR, out=denom)
        block /= denom
    return block


@register("flat_dark", order=10)
def flat_dark(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.flat_dark
    if not (c.normalize_flat or c.normalize_dark):
        return None

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        flat = reference(ctx, "flat", c.method) if c.normalize_flat else None
        dark = reference(ctx, "dark", c.method) if c.normalize_dark else None
        return normalize(block, flat, dark)

    def resident(shape: tuple[int, int, int], threads: int) -> int:
        return 2 * shape[1] * shape[2] * 4  # the cached flat and dark of the tile's rows

    def work(shape: tuple[int, int, int], threads: int) -> int:
        # the denominator, or a batch of raw frames and the median's copy of it
        _, rows, cols = shape
        if facts.n_frames is None:
            batch = FRAME_BATCH_BYTES
        else:
            batch = facts.n_frames * min(rows, rows_per_batch(facts.n_frames, cols)) * cols * 4
        return max(rows * cols * 4, 2 * batch)

    return Step("flat_dark", apply, work=work, resident=resident)
