"""I0 (top-up) correction: divide each projection by its beam intensity.

The intensity comes from the beam monitor when the scan has one (relative to
the first selected projection, flats and darks uncorrected, as the GUI does),
else from the air columns at both sides of each projection: their mean over the
whole projection, which makes the air 1. The air estimate needs whole
projections (rows FULL).
"""

from __future__ import annotations

import logging

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import FULL, Context, Facts, Needs, Step, register

log = logging.getLogger(__name__)


def divide_by_monitor(block: np.ndarray, i0: np.ndarray) -> np.ndarray:
    """Divide projection k by ``i0[k]`` in place."""
    block /= np.asarray(i0, dtype=np.float32)[:, None, None]
    return block


def air_intensity(block: np.ndarray, air: int) -> np.ndarray:
    """Mean of the ``air`` outermost columns at each side of each projection (float64, one per projection)."""
    if 2 * air > block.shape[2]:
        raise ValueError(f"preprocess.i0.air_columns={air} is more than half the width {block.shape[2]}")
    left = block[:, :, :air].mean(axis=(1, 2), dtype=np.float64)
    right = block[:, :, -air:].mean(axis=(1, 2), dtype=np.float64)
    return (left + right) / 2


def divide_by_air(block: np.ndarray, air: int) -> np.ndarray:
    """Divide each projection by its air intensity in place; a non-positive estimate leaves it as it is."""
    i0 = air_intensity(block, air)
    bad = ~(np.isfinite(i0) & (i0 > 0))
    if bad.any():
        log.warning("i0 from air: %d projection(s) with no positive air intensity left uncorrected", bad.sum())
        i0[bad] = 1.0
    return divide_by_monitor(block, i0)


@register("i0", order=20)
def i0_correction(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.i0
    if not c.enabled:
        return None
    if c.source == "monitor" and facts.has_i0 is False:
        raise ValueError("preprocess.i0.source is 'monitor' but the scan has no beam-monitor dataset "
                         "(see datasets.i0_path)")
    use_monitor = c.source == "monitor" or (c.source == "auto" and facts.has_i0 is True)
    if use_monitor:
        def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
            i0 = ctx.source.i0(*ctx.proj)
            if i0 is None:
                raise ValueError("preprocess.i0: the scan has no beam-monitor dataset (see datasets.i0_path)")
            return divide_by_monitor(block, i0)

        return Step("i0_monitor", apply)
    return Step("i0_air", lambda block, ctx: divide_by_air(block, c.air_columns), needs=Needs(rows=FULL))
