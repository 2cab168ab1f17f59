"""Rule conversion_range: one bit-depth conversion range for the whole volume, from a fixed sample of slices.

The slices are the same whatever k and j, so the range (and the converted volume) does not depend on the chunking.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import TomoConfig
from tomosnake.io.atomic import write_text
from tomosnake.recon.chain import conversion_range, reconstruct_block
from tomosnake.stages.plan import Plan, resolve_center
from tomosnake.stages.recon_chunk import read_rows

RANGE_SAMPLE_SLICES = 8  # slices reconstructed to fix the conversion range of the whole volume


def sample_rows(plan: Plan) -> list[int]:
    """Evenly spaced slices, independent of k and j, used to fix the conversion range."""
    n = plan.shape[1]
    return sorted({int(r) for r in np.linspace(0, n - 1, min(RANGE_SAMPLE_SLICES, n)).round()})


def write_range(vds_path: str | Path, plan: Plan, cfg: TomoConfig, out_path: str | Path) -> dict:
    """Fix the bit-depth conversion range once for the whole volume and write it as JSON."""
    conv = cfg.recon.convert
    center, _ = resolve_center(plan, cfg)
    result: dict = {"enabled": conv.enabled, "dtype": conv.dtype if conv.enabled else "float32", "mode": conv.mode}
    if conv.enabled:
        if conv.mode == "manual":
            vmin, vmax = float(conv.min), float(conv.max)  # type: ignore[arg-type]
        else:
            rows = sample_rows(plan)
            with h5py.File(vds_path, "r") as f:
                data = f["exchange/data"]
                slices = [reconstruct_block(read_rows(data, r, r + 1), plan.theta_deg, cfg.recon, center,
                                            plan.log_applied, cfg.threads) for r in rows]
            vmin, vmax = conversion_range(np.concatenate(slices), conv)
            result["sample_rows"] = rows
        result.update(min=vmin, max=vmax)
    write_text(out_path, json.dumps(result, indent=1))
    return result
