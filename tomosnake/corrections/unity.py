"""Normalisation to unity: divide each projection by its own mean (needs whole projections)."""

from __future__ import annotations

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import FULL, Facts, Needs, Step, register


def to_unity(block: np.ndarray) -> np.ndarray:
    """Divide each projection by its mean, in place."""
    block /= block.mean(axis=(1, 2), dtype=np.float64).astype(np.float32)[:, None, None]
    return block


@register("normalize_to_unity", order=30)
def normalize_to_unity(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    if not cfg.normalize_to_unity.enabled:
        return None
    return Step("normalize_to_unity", lambda block, ctx: to_unity(block), needs=Needs(rows=FULL))
