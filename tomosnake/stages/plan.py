"""The plan of one scan: chunk counts k and j, tile and slice-load sizes, from metadata and the memory budget.

The plan is computed by the ``plan`` checkpoint and read by every later rule.
It depends on the scan's shapes, the enabled steps and the memory budget
only; changing the budget changes k and j but never the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tomosnake.config import TomoConfig
from tomosnake.io.atomic import write_text
from tomosnake.report import timings

if TYPE_CHECKING:
    from tomosnake.io.stitched_scan import Scan

# Every job reads the plan (`Plan.read`); making one imports the pre-processing and reconstruction
# modules (SciPy, algotom, numba: seconds), so `make_plan` imports them itself.

MB = 1 << 20
# The default backend reconstructs slices in pairs (one complex signal). Loads and sinogram
# chunks start at even rows, so the pairing, and with it the result, is the same for every k, j
# whose budget holds two slices (a budget for one slice only gives ~1e-5 relative differences).
SLICE_PAIR = 2
CENTER_MAX_ANGLES = 360


class PlanError(ValueError):
    """A scan that cannot be planned with the given budget."""


def split(n: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """``n`` items in ``parts`` contiguous, near-equal ranges whose starts are multiples of ``align``."""
    inner = {int(e) for e in (np.linspace(0, n, parts + 1)[1:-1] / align).round() * align}
    edges = sorted({0, n} | {e for e in inner if 0 < e < n})
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


@dataclass
class Plan:
    """Everything the chunk jobs need to know, JSON-serialisable."""

    scan: str
    input: str
    info: dict
    crop: tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 kept by preprocessing
    proj_chunks: list[tuple[int, int]]
    tile: tuple[int, int]  # (projections, rows) per preprocessing memory load
    sino_chunks: list[tuple[int, int]]
    slices_per_load: int
    recon_width: int
    center: float | None  # automatic centre; None when the config gives one
    center_method: str
    log_applied: bool
    memory_mb: float
    estimates: dict = field(default_factory=dict)
    stitch_offsets: list[int] | None = None  # column offset of each of stitch.inputs, when stitching

    @property
    def k(self) -> int:
        return len(self.proj_chunks)

    @property
    def j(self) -> int:
        return len(self.sino_chunks)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the preprocessed stack (projections, rows, columns)."""
        r0, r1, c0, c1 = self.crop
        return (self.info["n_proj"], r1 - r0, c1 - c0)

    @property
    def theta_deg(self) -> np.ndarray:
        return np.asarray(self.info["theta_deg"], dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"k": self.k, "j": self.j}, indent=1)

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        data = json.loads(Path(path).read_text())
        data.pop("k"), data.pop("j")
        data["proj_chunks"] = [tuple(c) for c in data["proj_chunks"]]
        data["sino_chunks"] = [tuple(c) for c in data["sino_chunks"]]
        return cls(**data)


def _budget_bytes(cfg: TomoConfig, stage: Literal["preprocess", "recon"]) -> int:
    """Bytes of a job's budget left for data once the interpreter's share is reserved."""
    total = cfg.budget_mb(stage)
    if total - cfg.overhead_mb <= 0:
        raise PlanError(f"config key '{cfg.budget_key(stage)}': {total} MB leaves nothing for data after the "
                        f"{cfg.overhead_mb} MB reserved for the interpreter ('overhead_mb')")
    return int((total - cfg.overhead_mb) * MB)


def check_center(center: float, n_cols: int) -> None:
    """Reject a rotation axis outside the (cropped) detector."""
    if not 0 <= center < n_cols:
        raise PlanError(f"config key 'recon.center': {center} is outside the detector "
                        f"(0 to {n_cols - 1} pixels after cropping)")


def check_stripes(cfg: TomoConfig) -> None:
    """Reject an unknown stripe function or keyword of an enabled stripe removal."""
    from tomosnake.recon.stripe import checked

    for key, stripe in (("preprocess.stripe", cfg.preprocess.stripe), ("recon.stripe", cfg.recon.stripe)):
        if stripe.enabled:
            try:
                checked(stripe.function, stripe.kwargs)
            except ValueError as err:
                raise PlanError(f"config key '{key}': {err}") from None


def resolve_center(plan: Plan, cfg: TomoConfig) -> tuple[float, str]:
    """The centre a reconstruction uses: the configured one, else the plan's automatic one.

    The configured centre is not stored in the plan, so changing it reruns no preprocessing.
    """
    if cfg.recon.center is not None:
        return float(cfg.recon.center), "config"
    assert plan.center is not None, "plan made without automatic centre"
    return plan.center, plan.center_method


def _auto_center(cfg: TomoConfig, scan: Scan, crop: tuple[int, int, int, int]) -> tuple[float, str]:
    """Vo's methods (algotom) on the mean of a few flat-field-corrected sinograms at mid height.

    At most `CENTER_MAX_ANGLES` evenly spaced projections are read, so the cost stays
    bounded on scans of many thousand projections.
    """
    from tomosnake.recon.center import estimate_center

    n = scan.info.n_proj
    step = max(1, math.ceil(n / CENTER_MAX_ANGLES))
    n_rows = min(cfg.recon.center_search.n_rows, crop[1] - crop[0])
    r0 = (crop[0] + crop[1]) // 2 - n_rows // 2
    flat = scan.flats(r0, r0 + n_rows).mean(axis=0)
    dark = scan.darks(r0, r0 + n_rows).mean(axis=0)
    sinos = []
    for p0 in range(0, n, step):
        proj = scan.projections(p0, p0 + 1, r0, r0 + n_rows)[0]
        sinos.append((proj - dark) / np.maximum(flat - dark, 1e-6))
    trans = np.clip(np.stack(sinos), 1e-6, None)
    sino = -np.log(trans).mean(axis=1)[:, crop[2]:crop[3]]
    found = estimate_center(sino, np.asarray(scan.info.theta_deg)[::step], ncore=cfg.threads)
    return float(found.center), f"automatic: {found.method}"


def make_plan(cfg: TomoConfig, input_path: str, scan_name: str) -> Plan:
    """Plan one scan from its metadata, the enabled steps and the memory budget."""
    from tomosnake.io.stitched_scan import StitchedScan, open_scan
    from tomosnake.recon.backends import require_backend
    from tomosnake.recon.chain import block_overhead_bytes, output_width, slice_bytes
    from tomosnake.stages.preprocess_chunk import FIXED_BYTES, FULL, build_chain, output_window, subchunk_shape

    require_backend(cfg.recon.backend, cfg.recon.algorithm, cfg.recon.filter_name)
    check_stripes(cfg)
    with open_scan(cfg, input_path) as scan:
        info = scan.info
        stitch_offsets = scan.offsets if isinstance(scan, StitchedScan) else None
        scan.check_flats()
        chain = build_chain(cfg.preprocess, has_i0=info.has_i0, n_frames=max(info.n_flat, info.n_dark))
        crop = output_window(info.n_rows, info.n_cols, cfg.preprocess)
        center, center_method = None, "config"
        if cfg.recon.center is None:
            with timings.phase("center"):
                center, center_method = _auto_center(cfg, scan, crop)
        else:
            check_center(cfg.recon.center, crop[3] - crop[2])
    tile = subchunk_shape(chain, _budget_bytes(cfg, "preprocess"), info.n_proj, info.n_rows, info.n_cols, threads=cfg.threads)
    out_rows, out_cols = crop[1] - crop[0], crop[3] - crop[2]

    # A preprocessing job handles about `subchunks_per_job` tiles. No correction needs every
    # projection (stripe removal runs in the reconstruction stage), so k grows with the scan.
    assert chain.needs.proj is not FULL, "a preprocessing step needs every projection"
    tiles_per_proj_block = math.ceil(out_rows / tile[1])
    proj_per_job = tile[0] * max(1, math.ceil(cfg.subchunks_per_job / tiles_per_proj_block))
    k = math.ceil(info.n_proj / proj_per_job)

    per_slice = slice_bytes(info.n_proj, out_cols, cfg.recon, cfg.preprocess.stripe)
    # The same allowance for HDF5 caches and allocator slack as in preprocessing.
    fixed = block_overhead_bytes(info.n_proj, out_cols, cfg.recon) + FIXED_BYTES
    budget = _budget_bytes(cfg, "recon")
    pair = SLICE_PAIR if budget - fixed >= SLICE_PAIR * per_slice else 1
    slices_per_load = (budget - fixed) // (pair * per_slice) * pair
    if slices_per_load < 1:
        need = fixed + per_slice
        raise PlanError(f"config key '{cfg.budget_key('recon')}': one slice of {info.n_proj} angles x {out_cols} px "
                        f"needs {need / MB:.1f} MB for reconstruction; raise it to at least "
                        f"{cfg.overhead_mb + math.ceil(need / MB)}")
    j = math.ceil(out_rows / (slices_per_load * cfg.subchunks_per_job))
    width = output_width(out_cols, cfg.recon)
    out_item = np.dtype(cfg.recon.convert.dtype if cfg.recon.convert.enabled else "float32").itemsize
    estimates = {
        "raw_bytes": info.raw_bytes,
        "preprocessed_bytes": info.n_proj * out_rows * out_cols * 4,
        "recon_chunk_bytes": out_rows * width * width * out_item,
        "volume_bytes": out_rows * width * width * out_item,
        "recon_budget_bytes": budget,
        "recon_bytes_per_slice": per_slice,
        "recon_bytes_fixed": fixed,
    }
    return Plan(scan=scan_name, input=str(input_path), info=asdict(info), crop=crop,
                proj_chunks=split(info.n_proj, k), tile=tile, sino_chunks=split(out_rows, j, pair),
                slices_per_load=int(slices_per_load), recon_width=width, center=center,
                center_method=center_method, log_applied=chain.log_applied, memory_mb=cfg.memory_mb,
                estimates=estimates, stitch_offsets=stitch_offsets)


def write_plan(cfg: TomoConfig, input_path: str, scan_name: str, out_path: str | Path) -> Plan:
    """Make the plan and write it atomically as JSON."""
    plan = make_plan(cfg, input_path, scan_name)
    write_text(out_path, plan.to_json())
    return plan
