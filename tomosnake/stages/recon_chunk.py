"""Rules recon_chunk (one block of sinogram rows into its own file) and try_center (one row, several centres).

The arithmetic lives in `tomosnake.recon`; this module only reads blocks of
sinogram rows through the merged VDS, one memory load at a time, and writes
outputs atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path
from tomosnake.config import TomoConfig
from tomosnake.stages.plan import Plan, resolve_center
from tomosnake.recon.chain import convert, reconstruct_block

log = logging.getLogger(__name__)


def read_rows(vds: h5py.Dataset, r0: int, r1: int) -> np.ndarray:
    return vds[:, r0:r1, :].astype(np.float32, copy=False)


def recon_chunk(vds_path: str | Path, plan: Plan, j: int, cfg: TomoConfig, conv_range: dict,
                out_path: str | Path, after_load: Callable[[], None] | None = None) -> None:
    """Reconstruct sinogram rows ``plan.sino_chunks[j]`` load by load into ``out_path``.

    ``after_load`` is called after each load is written (fault injection in tests).
    """
    r0, r1 = plan.sino_chunks[j]
    center, _ = resolve_center(plan, cfg)
    width = plan.recon_width
    dtype = conv_range["dtype"]
    step = plan.slices_per_load  # even, like every chunk start: slice pairs do not depend on k and j
    loads = [(a, min(a + step, r1 - r0)) for a in range(0, r1 - r0, step)]
    with h5py.File(vds_path, "r") as src, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as dst:
        data = src["exchange/data"]
        out = dst.create_dataset("exchange/data", shape=(r1 - r0, width, width), dtype=dtype,
                                 chunks=(1, width, width))
        for n, (a, b) in enumerate(loads, 1):
            vol = reconstruct_block(read_rows(data, r0 + a, r0 + b), plan.theta_deg, cfg.recon, center,
                                    plan.log_applied, cfg.threads, cfg.preprocess.stripe)
            if conv_range["enabled"]:
                vol = convert(vol, cfg.recon.convert, conv_range["min"], conv_range["max"])
            out[a:b] = vol
            if after_load is not None:
                after_load()
            log.info("recon chunk %d: slices %d-%d of %d-%d done (%d/%d loads)", j, r0 + a, r0 + b, r0, r1,
                     n, len(loads))
        out.attrs.update(row0=r0, row1=r1, center=center)


def try_center(vds_path: str | Path, plan: Plan, cfg: TomoConfig, out_dir: str | Path) -> list[Path]:
    """Reconstruct one preprocessed row for a series of centres (absolute pixels) and write a contact sheet.

    Preprocessing does not depend on the centre, so the series reuses the run's preprocessed data.
    """
    from tomosnake.recon.center import centers_around, try_centers

    t = cfg.center_try
    row = plan.shape[1] // 2 if t.row is None else t.row
    if row >= plan.shape[1]:
        raise ValueError(f"config key 'center_try.row': {row} is outside the {plan.shape[1]} preprocessed rows")
    middle = t.center if t.center is not None else resolve_center(plan, cfg)[0]
    with h5py.File(vds_path, "r") as f:
        sino = read_rows(f["exchange/data"], row, row + 1)[:, 0, :]

    def one_slice(s: np.ndarray, theta_deg: np.ndarray, center: float) -> np.ndarray:
        return reconstruct_block(s[:, None, :], theta_deg, cfg.recon, center, plan.log_applied, cfg.threads,
                                 cfg.preprocess.stripe)[0]

    return try_centers(sino, plan.theta_deg, centers_around(middle, t.width, t.step), one_slice, out_dir,
                       title=f"{plan.scan}, row {row}")
