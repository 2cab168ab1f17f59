"""Crop: keep rows r0:r1 and columns c0:c1 (half-open) of every projection.

``crop.ranges`` is (top, bottom, left, right); a stop of -1 means "to the end",
as in the ``slice_*`` selections. Steps after the crop see the cropped image:
its edges are the crop window's edges.
"""

from __future__ import annotations

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Step, register


def _axis(start: int, stop: int, n: int, what: str) -> tuple[int, int]:
    if start < 0 or stop < -1:
        raise ValueError(f"preprocess.crop.ranges: {what} {start}:{stop} must be >= 0 (stop -1 = to the end)")
    stop = n if stop == -1 else min(stop, n)
    if start >= stop:
        raise ValueError(f"preprocess.crop.ranges: {what} {start}:{stop} is empty for {n} {what}")
    return start, stop


def window(n_rows: int, n_cols: int, cfg: PreprocessConfig) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) kept after the crop, in selected coordinates."""
    if not cfg.crop.enabled:
        return 0, n_rows, 0, n_cols
    top, bottom, left, right = cfg.crop.ranges
    return (*_axis(top, bottom, n_rows, "rows"), *_axis(left, right, n_cols, "columns"))


@register("crop", order=50)
def crop(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    if not cfg.crop.enabled:
        return None

    def bounds(ctx: Context) -> tuple[int, int, int, int]:
        r0, r1, c0, c1 = window(*ctx.image, cfg)
        return max(ctx.rows[0], r0), min(ctx.rows[1], r1), c0, c1

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        a, b, c0, c1 = bounds(ctx)
        return np.ascontiguousarray(block[:, a - ctx.rows[0]:b - ctx.rows[0], c0:c1])

    def reframe(ctx: Context) -> Context:
        a, b, c0, c1 = bounds(ctx)
        r0, r1, _, _ = window(*ctx.image, cfg)
        return ctx.moved(rows=(a - r0, b - r0), image=(r1 - r0, c1 - c0))

    def work(shape: tuple[int, int, int], threads: int) -> int:
        return shape[0] * shape[1] * shape[2] * 4  # the cropped copy, at most one block

    return Step("crop", apply, work=work, reframe=reframe)
