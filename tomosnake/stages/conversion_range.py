"""Rule conversion_range: one bit-depth conversion range for the whole volume, from a fixed sample of slices.
The job runs only when the range is sampled; otherwise the config fixes it (`read_range`).

The slices are the same whatever k and j, so the range (and the converted volume) does not depend on the chunking.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import TomoConfig
from tomosnake.io.atomic import write_text
from tomosnake.stages.plan import Plan, resolve_center

RANGE_SAMPLE_SLICES = 8  # slices reconstructed to fix the conversion range of the whole volume


def sample_rows(plan: Plan) -> list[int]:
    """Evenly spaced slices, independent of k and j, used to fix the conversion range."""
    n = plan.shape[1]
    return sorted({int(r) for r in np.linspace(0, n - 1, min(RANGE_SAMPLE_SLICES, n)).round()})


def write_range(vds_path: str | Path, plan: Plan, cfg: TomoConfig, out_path: str | Path) -> dict:
    """Fix the bit-depth conversion range once for the whole volume and write it as JSON."""
    result = conv_range(cfg, vds_path, plan)
    write_text(out_path, json.dumps(result, indent=1))
    return result


def conv_range(cfg: TomoConfig, vds_path: str | Path, plan: Plan) -> dict:
    """The conversion range record: `Convert.fixed_range`, else from `sample_rows` reconstructed."""
    conv = cfg.recon.convert
    fixed = conv.fixed_range()
    if fixed is not None:
        return fixed
    # Here, not above: combine reads the range through this module without SciPy and FINUFFT.
    from tomosnake.recon.chain import conversion_range, reconstruct_block
    from tomosnake.stages.recon_chunk import read_rows

    center, _ = resolve_center(plan, cfg)
    rows = sample_rows(plan)
    with h5py.File(vds_path, "r") as f:
        data = f["exchange/data"]
        slices = [reconstruct_block(read_rows(data, r, r + 1), plan.theta_deg, cfg.recon, center,
                                    plan.log_applied, cfg.threads) for r in rows]
    vmin, vmax = conversion_range(np.concatenate(slices), conv)
    return {"enabled": True, "dtype": conv.dtype, "mode": conv.mode, "sample_rows": rows, "min": vmin, "max": vmax}


def read_range(cfg: TomoConfig, path: str | Path | None) -> dict:
    """The conversion range a recon or combine job uses: the conversion_range job's file, when the
    config needs one (``path``), else `Convert.fixed_range` (and no conversion_range job runs)."""
    if path is not None:
        return json.loads(Path(path).read_text())
    fixed = cfg.recon.convert.fixed_range()
    if fixed is None:
        raise ValueError("recon.convert samples the volume: the conversion_range job's file is needed")
    return fixed
