"""-log of the transmission, before or after phase retrieval; NaN (and +-inf, from p <= 0) become 0.

The GUI maps NaN to 0; infinities are mapped too so that Fourier steps and the
reconstruction stay finite.
"""

from __future__ import annotations

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import Context, Facts, Step, each_projection, register


def _minus_log_one(proj: np.ndarray) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(proj, out=proj)
    np.negative(proj, out=proj)
    proj[~np.isfinite(proj)] = 0.0


def minus_log(block: np.ndarray, threads: int = 1) -> np.ndarray:
    """-log in place, non-finite results set to 0 (a projection at a time: small masks)."""
    return each_projection(block, _minus_log_one, threads)


def _step(name: str) -> Step:
    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        return minus_log(block, ctx.threads)

    def work(shape: tuple[int, int, int], threads: int) -> int:
        return 2 * threads * shape[1] * shape[2]  # two boolean masks of one projection per thread

    return Step(name, apply, work=work, threaded=True)


@register("minus_log_before_phase", order=90)
def before_phase(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    return _step("minus_log_before_phase") if cfg.minus_log_before_phase else None


@register("minus_log_after_phase", order=110)
def after_phase(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    return _step("minus_log_after_phase") if cfg.minus_log_after_phase else None
