"""Dark/flat normalisation with TomoPy ``normalize`` semantics: (p - dark) / max(flat - dark, 1e-6).

Flat only: p / flat; dark only: p - dark. The reference of each is the mean or
the median of its stack, per pixel; flats and darks may live in other files
(`RawScan` resolves that).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Step, each_projection, register
from tomosnake.io.scan import ScanError, columns_named

FLOOR = np.float32(1e-6)  # TomoPy's smallest denominator
FRAME_BATCH_BYTES = 8 << 20  # flats and darks are reduced this many bytes of frames at a time


def rows_per_batch(n_frames: int, n_cols: int) -> int:
    """Rows of a frame stack reduced at a time."""
    return max(1, FRAME_BATCH_BYTES // max(1, n_frames * n_cols * 4))


def check_above(frames: np.ndarray, floor: np.ndarray | float, label: str, what: str, row0: int) -> None:
    """Refuse flat ``frames`` (frames, rows, columns; frame i is the file's frame i) at or below ``floor`` (the
    reduced darks of the same rows, or 0) in any pixel, naming the first such frame: (p - dark) / (flat - dark)
    would divide by TomoPy's floor of 1e-6 there (a streak, or rings when some frames are)."""
    low = frames <= floor
    if low.any():
        per_frame = low.any(axis=(1, 2))
        i = int(np.flatnonzero(per_frame)[0])
        cols = np.flatnonzero(low[i].any(axis=0))
        raise ScanError(f"{label} frame {i} is at or below {what} in {columns_named(cols)} "
                        f"(of the selection; from row {row0}; {int(per_frame.sum())} of the {len(frames)} "
                        f"frames are); leave the columns out with datasets.slice_hor or preprocess.crop")


def reduce_frames(read: Callable[[int, int], np.ndarray], r0: int, r1: int, method: str,
                  check: Callable[[np.ndarray, int, int], None] | None = None) -> np.ndarray:
    """Per-pixel mean or median over a frame stack, rows ``r0:r1``, reading a few rows at a time;
    ``check(frames, a, b)`` sees each batch of rows ``a:b`` of every frame as read."""
    first = read(r0, min(r0 + 1, r1))
    n_frames, _, n_cols = first.shape
    batch = rows_per_batch(n_frames, n_cols)
    out = np.empty((r1 - r0, n_cols), dtype=np.float32)
    reduce = np.median if method == "median" else np.mean
    for a in range(r0, r1, batch):
        b = min(a + batch, r1)
        frames = read(a, b)
        if check is not None:
            check(frames, a, b)
        out[a - r0:b - r0] = reduce(frames, axis=0)
    return out


def flats_above(label: str, dark: np.ndarray | None, r0: int) -> Callable[[np.ndarray, int, int], None]:
    """The `reduce_frames` check of flats of rows ``r0:...`` against ``dark`` (the reduced darks of those
    rows), or against 0 without darks."""

    def check(frames: np.ndarray, a: int, b: int) -> None:
        if dark is None:
            check_above(frames, 0.0, label, "zero", a)
        else:
            check_above(frames, dark[a - r0:b - r0], label, "the reduced dark fields", a)

    return check


def reference(ctx: Context, kind: str, method: str, dark: np.ndarray | None = None) -> np.ndarray:
    """The reduced flat or dark for the block's rows, cached for the block's row range. Every flat frame
    read is checked against ``dark`` (the reduced darks of the same rows; None: against zero)."""
    key = (kind, method, ctx.raw_rows)
    if key not in ctx.cache:
        if kind == "flat":
            label = ctx.source.frames_label("flat")
            check = flats_above(label, dark, ctx.raw_rows[0])
            ctx.cache[key] = reduce_frames(ctx.source.flats, *ctx.raw_rows, method, check)
        else:
            ctx.cache[key] = reduce_frames(ctx.source.darks, *ctx.raw_rows, method)
    return ctx.cache[key]


def normalize(block: np.ndarray, flat: np.ndarray | None, dark: np.ndarray | None, threads: int = 1) -> np.ndarray:
    """Flat/dark normalisation in place (references broadcast over projections), on ``threads`` threads."""
    denom = None
    if flat is not None:
        denom = flat - dark if dark is not None else flat
        if dark is not None:
            np.maximum(denom, FLOOR, out=denom)

    def one(proj: np.ndarray) -> None:
        if dark is not None:
            proj -= dark
        if denom is not None:
            proj /= denom

    return each_projection(block, one, threads)


@register("flat_dark", order=10)
def flat_dark(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.flat_dark
    if not (c.normalize_flat or c.normalize_dark):
        return None

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        dark = reference(ctx, "dark", c.method) if c.normalize_dark else None
        flat = reference(ctx, "flat", c.method, dark) if c.normalize_flat else None
        return normalize(block, flat, dark, ctx.threads)

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

    return Step("flat_dark", apply, work=work, resident=resident, threaded=True)
