"""Air/background correction with TomoPy ``normalize_bg`` semantics.

For every projection row: the means of the ``air`` outermost pixels at the left
and at the right (a non-positive mean counts as 1) define a straight line across
the row, and the row is divided by it, so both air regions become 1.
"""

from __future__ import annotations

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Step, register


def normalize_bg(block: np.ndarray, air: int) -> np.ndarray:
    """Divide each row by the line through its left and right air means, in place."""
    n_cols = block.shape[2]
    if 2 * air > n_cols:
        raise ValueError(f"preprocess.background.air={air} is more than half the width {n_cols}")
    left = block[:, :, :air].mean(axis=2, dtype=np.float64)
    right = block[:, :, n_cols - air:].mean(axis=2, dtype=np.float64)
    left[left <= 0] = 1.0
    right[right <= 0] = 1.0
    frac = np.arange(n_cols, dtype=np.float64) / max(n_cols - 1, 1)
    for k in range(block.shape[0]):
        line = left[k, :, None] + (right[k] - left[k])[:, None] * frac[None, :]
        block[k] /= line.astype(np.float32)
    return block


@register("background", order=80)
def background(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.background
    if not c.enabled:
        return None

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        return normalize_bg(block, c.air)

    def work(shape: tuple[int, int, int], threads: int) -> int:
        return shape[1] * shape[2] * (8 + 4)  # one projection's line in float64 and float32

    return Step("background", apply, work=work)
