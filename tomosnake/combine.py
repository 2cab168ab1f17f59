"""Join the reconstructed sinogram blocks into one DXchange volume, block by block."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import h5py

from tomosnake.atomic import atomic_path
from tomosnake.config import TomoConfig, stage_dict
from tomosnake.plan import Plan, resolve_center
from tomosnake.vds import stack

VOLUME_CHUNK = 64  # cubic HDF5 chunks: slices along any axis read a bounded number of chunks


def _chunks(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(min(VOLUME_CHUNK, n) for n in shape)  # type: ignore[return-value]


def _provenance(f: h5py.File, plan: Plan, cfg: TomoConfig, conv_range: dict) -> None:
    """Record how the volume was made: parameters, range, centre, versions."""
    from tomosnake import __version__

    attrs = f["exchange/data"].attrs
    attrs["tomosnake_version"] = __version__
    attrs["input"] = plan.input
    attrs["center"], attrs["center_method"] = resolve_center(plan, cfg)
    attrs["conversion_range"] = json.dumps(conv_range)
    for stage in ("preprocess", "recon", "output"):
        attrs[f"{stage}_parameters"] = json.dumps(stage_dict(cfg, stage))


def combine(recon_paths: Sequence[str | Path], plan: Plan, cfg: TomoConfig, conv_range: dict,
            out_path: str | Path) -> None:
    """Write the volume as one physical file, or as a VDS over the recon chunk files."""
    if cfg.output.combine == "virtual":
        stack(recon_paths, out_path)
        with h5py.File(out_path, "a") as f:
            _provenance(f, plan, cfg, conv_range)
        return
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as dst:
        out = None
        for path, (r0, r1) in zip(recon_paths, plan.sino_chunks, strict=True):
            with h5py.File(path, "r") as src:
                data = src["exchange/data"]
                if out is None:
                    shape = (plan.shape[1], *data.shape[1:])
                    out = dst.create_dataset("exchange/data", shape=shape, dtype=data.dtype, chunks=_chunks(shape))
                for a in range(0, r1 - r0, plan.slices_per_load):
                    b = min(a + plan.slices_per_load, r1 - r0)
                    out[r0 + a:r0 + b] = data[a:b]
        _provenance(dst, plan, cfg, conv_range)
