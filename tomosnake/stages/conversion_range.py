"""Rule conversion_range: one bit-depth conversion range for the whole volume, from a fixed sample of slices,
and the resolution estimate (FRC of half-data reconstructions of a few middle slices).

The slices are the same whatever k and j, so the range (and the converted volume) does not depend on the chunking.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import DEFAULT_FILTER, TomoConfig
from tomosnake.io.atomic import write_text
from tomosnake.placement import GPU_BACKENDS
from tomosnake.recon import gridrec, lamino
from tomosnake.recon.backends import require_backend
from tomosnake.recon.chain import conversion_range, reconstruct_block
from tomosnake.recon.frc import even_odd, frc
from tomosnake.recon.steps import exclude_projections
from tomosnake.stages.plan import Plan, resolve_center, resolve_recon
from tomosnake.stages.recon_chunk import (
    lamino_from_window,
    lamino_geometry,
    read_rows,
    reconstruct_slices,
)

RANGE_SAMPLE_SLICES = 8  # slices reconstructed to fix the conversion range of the whole volume
FRC_SLICES = 2  # middle slices reconstructed from each half of the projections for the resolution estimate:
# one pair (gridrec reconstructs two slices as one complex sinogram, so three would cost as four)


def sample_rows(plan: Plan) -> list[int]:
    """Evenly spaced slices, independent of k and j, used to fix the conversion range."""
    n = plan.n_slices
    return sorted({int(r) for r in np.linspace(0, n - 1, min(RANGE_SAMPLE_SLICES, n)).round()})


def frc_rows(plan: Plan) -> list[int]:
    """The middle `FRC_SLICES` output slices (preprocessed rows), no more than one load of the budget holds."""
    n, count = plan.n_slices, max(1, min(FRC_SLICES, plan.slices_per_load))
    first = max(0, n // 2 - count // 2)
    return list(range(first, min(n, first + count)))


def resolution(vds_path: str | Path, plan: Plan, cfg: TomoConfig) -> dict:
    """FRC of `frc_rows` reconstructed from the even and from the odd projections (`tomosnake.recon.frc`).

    The chain is the run's, without the circular mask; excluded projections are dropped before
    the split. Costs about one reconstruction of `FRC_SLICES` slices. A GPU backend's run gets its
    FRC from gridrec on the CPU: this job is placed on the CPU partition (`tomosnake.placement`)
    unless it samples a conversion range, and an estimate of the data's resolution needs no GPU.
    """
    run = resolve_recon(plan, cfg)
    update: dict = {"circ_mask": run.circ_mask.model_copy(update={"enabled": False}), "excluded_proj": []}
    if run.backend in GPU_BACKENDS:
        update |= {"backend": "gridrec", "algorithm": "gridrec", "filter_name": run.filter_name
                   if run.filter_name in gridrec.FILTERS else DEFAULT_FILTER["gridrec"]}
    recon = run.model_copy(update=update)
    n = plan.shape[0]
    if cfg.recon.sino_360_to_180.enabled and n % 4:
        return {"skipped": f"{n} projections: halves of a 360-degree scan need a multiple of 4"}
    center, _ = resolve_center(plan, cfg)
    rows = frc_rows(plan)
    r0, r1 = rows[0], rows[-1] + 1
    if plan.lamino:  # slab rows[0]..rows[-1] from the detector rows its geometry needs
        geom = lamino_geometry(plan, cfg, center)
        r0, r1 = lamino.row_window(geom, plan.theta_deg, rows[0], rows[-1] + 1)
    with h5py.File(vds_path, "r") as f:
        data = read_rows(f["exchange/data"], r0, r1)
    data, theta = exclude_projections(data, plan.theta_deg, cfg.recon.excluded_proj)
    (pa, ta), (pb, tb) = even_odd(data, theta)
    if plan.lamino:
        halves = [lamino_from_window(p, r0, t, plan, cfg, geom, rows[0], rows[-1] + 1, recon) for p, t in
                  ((pa, ta), (pb, tb))]
    else:
        halves = [reconstruct_block(p, t, recon, center, plan.log_applied, plan.threads(cfg), cfg.preprocess.stripe)
                  for p, t in ((pa, ta), (pb, tb))]
    return frc(halves[0], halves[1], workers=plan.threads(cfg)).to_dict() | {"rows": rows}


def write_range(vds_path: str | Path, plan: Plan, cfg: TomoConfig, out_path: str | Path) -> dict:
    """Fix the bit-depth conversion range once for the whole volume, estimate the resolution (FRC), write JSON."""
    conv = cfg.recon.convert
    center, _ = resolve_center(plan, cfg)
    result: dict = {"enabled": conv.enabled, "dtype": conv.output_dtype, "mode": conv.mode}
    if conv.enabled:
        if conv.mode == "manual":
            vmin, vmax = float(conv.min), float(conv.max)  # type: ignore[arg-type]
        else:
            require_backend(cfg.recon.backend)  # here, where the job runs: the submit host need not have it
            rows = sample_rows(plan)
            with h5py.File(vds_path, "r") as f:
                data = f["exchange/data"]
                slices = [reconstruct_slices(data, plan, cfg, center, r, r + 1) for r in rows]
            vmin, vmax = conversion_range(np.concatenate(slices), conv)
            result["sample_rows"] = rows
        result.update(min=vmin, max=vmax)
    result["frc"] = resolution(vds_path, plan, cfg)
    write_text(out_path, json.dumps(result, indent=1))
    return result
