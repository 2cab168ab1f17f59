"""Flattening: p - uniform_filter(p, size) + 1 on each projection (box mean over size x size pixels)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Needs, Step, register


def flatten(block: np.ndarray, size: int, threads: int = 1) -> np.ndarray:
    """Subtract each projection's ``size`` x ``size`` box mean (scipy 'reflect' edges) and add 1, in place."""
    from scipy.ndimage import uniform_filter  # lazy: see tomosnake/__init__.py

    def one(k: int) -> None:
        block[k] -= uniform_filter(block[k], size=size)
        block[k] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(block.shape[0])))
    return block


@register("flatten", order=40)
def flatten_images(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.flatten
    if not c.enabled:
        return None

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        return flatten(block, c.size, ctx.threads)

    def work(shape: tuple[int, int, int], threads: int) -> int:
        return 2 * threads * shape[1] * shape[2] * 4

    # An even box spans size//2 pixels before and size//2 - 1 after the centre.
    return Step("flatten", apply, needs=Needs(rows=c.size // 2), work=work, threaded=True)
