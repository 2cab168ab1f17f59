"""The report's views of the raw and pre-processed data, saved while the pre-processed data exist.

The report's job reads these, never the pre-processed chunks: cleanup removes those,
and a report that needed them would make Snakemake pre-process the whole scan again
whenever the report is redone (for instance after a new pyramid). Reads are bounded:
one projection, and one sinogram row from at most `RAW_SINO_ANGLES` raw projections
(raw files are usually chunked per projection, so a raw sinogram reads whole frames)
and from every pre-processed one (contiguous chunk files). Arrays are kept at display
resolution (`tomosnake.report.figures.reduce_for_display`), with their full shapes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path
from tomosnake.config import TomoConfig
from tomosnake.report.figures import reduce_for_display
from tomosnake.stages.plan import Plan
from tomosnake.io.stitched_scan import open_scan

RAW_SINO_ANGLES = 360
IMAGES = ("raw_proj", "raw_sino", "corr_proj", "corr_sino")
ACQ_DATE_KEYS = ("process/acquisition/start_date", "measurement/sample/experiment/start_date",
                 "measurement/instrument/acquisition/start_date")


@dataclass
class Previews:
    """Page 1's raw and corrected images (display resolution) and what labels them."""

    images: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]]  # full (rows, columns) of each image
    proj_index: int
    corr_row: int  # pre-processed row of the corrected sinogram
    raw_row: int  # detector row of the raw sinogram (the same row before cropping)
    raw_sino_step: int  # every n-th projection in the raw sinogram
    steps: list[str]  # corrections as recorded by the pre-processing jobs
    acquired: str | None
    raw_modified: str
    stitched: int = 0  # files a stitched scan's raw images are joined from (each normalised), 0 if none
    warnings: list[str] = field(default_factory=list)  # usable oddities the pre-processing jobs found

    @classmethod
    def read(cls, path: str | Path) -> Previews:
        with h5py.File(path, "r") as f:
            a = f.attrs
            return cls(images={k: f[k][()] for k in IMAGES},
                       shapes={k: tuple(int(n) for n in f[k].attrs["full_shape"]) for k in IMAGES},  # type: ignore[misc]
                       proj_index=int(a["proj_index"]), corr_row=int(a["corr_row"]), raw_row=int(a["raw_row"]),
                       raw_sino_step=int(a["raw_sino_step"]), steps=[str(s) for s in a["steps"]],
                       acquired=str(a["acquired"]) or None, raw_modified=str(a["raw_modified"]),
                       stitched=int(a.get("stitched", 0)), warnings=json.loads(a.get("warnings", "[]")))


def _steps_applied(vds: h5py.Dataset, plan: Plan, cfg: TomoConfig) -> list[str]:
    """The corrections as recorded by the pre-processing jobs (first chunk), else as the config implies."""
    sources = vds.virtual_sources() if vds.is_virtual else []
    if sources:
        chunk = Path(vds.file.filename).parent / sources[0].file_name
        if chunk.is_file():
            with h5py.File(chunk, "r") as f:
                steps = f["exchange/data"].attrs.get("steps")
                if steps is not None:
                    return [str(s) for s in steps]
    from tomosnake.stages.preprocess_chunk import build_chain  # the report imports this module: no SciPy for it

    return build_chain(cfg.preprocess, has_i0=plan.info.get("has_i0")).names


def _chunk_warnings(vds: h5py.Dataset) -> list[str]:
    """The warnings the pre-processing jobs recorded in their chunk files, in chunk order."""
    out: list[str] = []
    for source in vds.virtual_sources() if vds.is_virtual else []:
        chunk = Path(vds.file.filename).parent / source.file_name
        if chunk.is_file():
            with h5py.File(chunk, "r") as f:
                out += json.loads(f["exchange/data"].attrs.get("warnings", "[]"))
    return out


def _acquired(raw_path: str) -> str:
    with h5py.File(raw_path, "r") as f:
        for key in ACQ_DATE_KEYS:
            ds = f.get(key)
            if isinstance(ds, h5py.Dataset) and ds.size == 1:
                v = ds[()]
                return (v.decode() if isinstance(v, bytes) else str(v)).strip()
    return ""


def write_previews(plan: Plan, cfg: TomoConfig, vds_path: str | Path, out_path: str | Path) -> None:
    """Read page 1's raw and corrected images and write them, reduced for display, to ``out_path``."""
    n_proj, p = plan.info["n_proj"], 0
    with h5py.File(vds_path, "r") as f:
        corr = f["exchange/data"]
        row = corr.shape[1] // 2
        images = {"corr_proj": corr[p], "corr_sino": corr[:, row, :]}
        steps = _steps_applied(corr, plan, cfg)
        warnings = _chunk_warnings(corr)
    raw_row = plan.crop[0] + row
    step = math.ceil(n_proj / RAW_SINO_ANGLES)
    # A stitched scan's raw images are its joined projections (each file normalised by its own flats), the
    # width the corrected ones have, not its first file's.
    with open_scan(cfg, plan.input, plan.stitch_offsets) as scan:
        images["raw_proj"] = scan.projections(p, p + 1, 0, plan.info["n_rows"])[0]
        images["raw_sino"] = np.concatenate([scan.projections(q, q + 1, raw_row, raw_row + 1)[:, 0, :]
                                             for q in range(0, n_proj, step)])
    modified = datetime.fromtimestamp(Path(plan.input).stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        for name in IMAGES:
            ds = f.create_dataset(name, data=reduce_for_display(images[name]))
            ds.attrs["full_shape"] = images[name].shape
        f.attrs.update(proj_index=p, corr_row=row, raw_row=raw_row, raw_sino_step=step, steps=steps,
                       acquired=_acquired(plan.input), raw_modified=modified,
                       stitched=len(plan.stitch_offsets or []), warnings=json.dumps(warnings))
