"""The plan of one scan: chunk counts k and j, tile and slice-load sizes, from metadata and the memory budget.

The plan is computed by the ``plan`` checkpoint and read by every later rule.
It depends on the scan's shapes, the enabled steps and the memory budget
only; changing the budget changes k and j but never the result.

Centres are absolute pixels in one of two frames, named where each value is stored:

* detector columns: columns of the preprocessed projections (0 = the first column kept by the
  crop). `Plan.axis` and ``recon.sino_360_to_180.old_center`` are in this frame.
* reconstruction columns: columns of the sinogram the reconstruction gets, before padding. The
  same as detector columns without 360->180 stitching; with it, columns of the stitched sinogram,
  whose axis is `steps.center_after_360` (old_center + width - overlap with the axis in the left
  half). ``recon.center`` and `Plan.center` are in this frame.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from tomosnake.config import ReconConfig, TomoConfig
from tomosnake.corrections.minuslog import minus_log
from tomosnake.io.atomic import write_text
from tomosnake.report import timings
from tomosnake.io.scan import ScanInfo
from tomosnake.io.stitched_scan import Scan, StitchedScan, open_scan
from tomosnake.recon import lamino, steps
from tomosnake.recon.axis import MIN_OVERLAP_FRACTION
from tomosnake.recon.backends import check_backend
from tomosnake.recon.chain import (
    block_overhead_bytes,
    output_width,
    slice_bytes,
    stripe_passes,
)
from tomosnake.recon.stripe import checked
from tomosnake.stages.preprocess_chunk import (
    FIXED_BYTES,
    FULL,
    build_chain,
    output_window,
    subchunk_shape,
)

MB = 1 << 20
log = logging.getLogger(__name__)
# The default backend reconstructs slices in pairs (one complex signal). Loads and sinogram
# chunks start at even rows, so the pairing, and with it the result, is the same for every k, j
# whose budget holds two slices (a budget for one slice only gives ~1e-5 relative differences).
SLICE_PAIR = 2
CENTER_MAX_ANGLES = 360  # projections read by the laminography centre search
MIN_COLUMNS = 8  # narrower projections leave no room for a reconstruction (and no centre search)
CENTER_ROW_BLOCK = 64  # detector rows read at once by the laminography centre search


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
    center: float | None  # automatic centre, reconstruction columns; None when recon.center gives it
    center_method: str
    log_applied: bool
    memory_mb: float
    estimates: dict = field(default_factory=dict)
    stitch_offsets: list[int] | None = None  # column offset of each of stitch.inputs, when stitching
    stitch: dict | None = None  # how they were joined (`StitchedScan.layout`), for the report
    warnings: list[str] = field(default_factory=list)  # usable oddities of the input (log, report page 1)
    # Laminography: angle, height, lateral radius, each job's detector-row window and rows read (`lamino_plan`).
    lamino: dict | None = None
    axis: float | None = None  # the rotation axis found in the projections, detector columns; None if not searched
    old_center: float | None = None  # the automatic recon.sino_360_to_180.old_center (= axis), detector columns
    recon_threads: int | None = None  # reconstruction threads the recon budget holds (None: config threads)

    def threads(self, cfg: TomoConfig) -> int:
        """Threads of a reconstructing job: the config's, at most what the plan's budget holds."""
        return min(cfg.threads, self.recon_threads or cfg.threads)

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
    def n_slices(self) -> int:
        """Slices of the output volume: the preprocessed rows, or the laminography height."""
        return int(self.lamino["height"]) if self.lamino else self.shape[1]

    def loads(self, j: int) -> list[tuple[int, int]]:
        """Job ``j``'s memory loads: absolute slice ranges of at most `slices_per_load` each."""
        r0, r1 = self.sino_chunks[j]
        return [(a, min(a + self.slices_per_load, r1)) for a in range(r0, r1, self.slices_per_load)]

    @property
    def theta_deg(self) -> np.ndarray:
        return np.asarray(self.info["theta_deg"], dtype=np.float64)

    def to_json(self) -> str:
        return json.dumps(_shallow(self) | {"k": self.k, "j": self.j}, indent=1)

    @classmethod
    def cached(cls, path: str | Path) -> Plan:
        """`read`, once per version of the file: the workflow's input and resource functions ask for the
        plan once per job, and a plan of 25000 angles takes milliseconds to parse."""
        st = os.stat(path)
        return _read_cached(str(path), st.st_mtime_ns, st.st_size)

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        data = json.loads(Path(path).read_text())
        data.pop("k"), data.pop("j")
        data["proj_chunks"] = [tuple(c) for c in data["proj_chunks"]]
        data["sino_chunks"] = [tuple(c) for c in data["sino_chunks"]]
        return cls(**data)


@lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> Plan:
    return Plan.read(path)


def _shallow(obj: object) -> dict:
    """A flat dataclass as a dict; `dataclasses.asdict` deep-copies every angle (1 s at 25134 angles)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]


def budget_bytes(cfg: TomoConfig, stage: Literal["preprocess", "recon"]) -> int:
    """Bytes of a job's budget left for data once the interpreter's share is reserved."""
    total = cfg.budget_mb(stage)
    if total - cfg.overhead_mb <= 0:
        raise PlanError(f"config key '{cfg.budget_key(stage)}': {total} MB leaves nothing for data after the "
                        f"{cfg.overhead_mb} MB reserved for the interpreter ('overhead_mb')")
    return int((total - cfg.overhead_mb) * MB)


def check_center(center: float, n_cols: int) -> None:
    """Reject a rotation axis outside the sinogram the reconstruction gets (``n_cols`` columns)."""
    if not 0 <= center < n_cols:
        raise PlanError(f"config key 'recon.center': {center} is outside the sinogram (0 to {n_cols - 1} "
                        "pixels after cropping and 360-to-180)")


def check_size(n_proj: int, n_cols: int, cfg: TomoConfig) -> None:
    """Reject projections too narrow to reconstruct (after selection and crop), or too few or narrow
    for the automatic centre search when no ``recon.center`` is given."""
    from tomosnake.recon import center

    auto = cfg.recon.center is None
    need = max(MIN_COLUMNS, center.MIN_COLUMNS) if auto else MIN_COLUMNS
    why = " for the automatic centre search (or give recon.center)" if auto else ""
    if n_cols < need:
        key = "preprocess.crop" if cfg.preprocess.crop.enabled else "datasets.slice_hor"
        raise PlanError(f"config key '{key}': {n_cols} column(s) left to reconstruct; at least {need} are "
                        f"needed{why}")
    if auto and n_proj < center.MIN_ANGLES:
        raise PlanError(f"config key 'datasets.slice_proj': {n_proj} projection(s) selected; at least "
                        f"{center.MIN_ANGLES} are needed{why}")


def check_excluded(n_proj: int, cfg: TomoConfig) -> None:
    """Reject ``recon.excluded_proj`` ranges that leave no projection (counted after 360->180 stitching)."""
    r = cfg.recon
    if not r.excluded_proj:
        return
    n = n_proj // 2 if r.sino_360_to_180.enabled else n_proj
    keep = np.ones(n, dtype=bool)
    for a, b in r.excluded_proj:
        keep[a:b] = False
    if keep.sum() < 2:
        ranges = [list(e) for e in r.excluded_proj]
        raise PlanError(f"config key 'recon.excluded_proj': {ranges} leaves {int(keep.sum())} of the {n} "
                        f"projections; a reconstruction needs at least two")


def check_stripes(cfg: TomoConfig) -> None:
    """Reject an unknown stripe function or keyword of an enabled stripe removal."""
    for key, stripe in (("preprocess.stripe", cfg.preprocess.stripe), ("recon.stripe", cfg.recon.stripe)):
        if stripe.enabled:
            try:
                checked(stripe.function, stripe.kwargs)
            except ValueError as err:
                raise PlanError(f"config key '{key}': {err}") from None


def resolve_center(plan: Plan, cfg: TomoConfig) -> tuple[float, str]:
    """The centre a reconstruction uses, in reconstruction columns: the configured one, else the plan's.

    The configured centre is not stored in the plan, so changing it reruns no preprocessing.
    """
    if cfg.recon.center is not None:
        return float(cfg.recon.center), "config"
    assert plan.center is not None, "plan made without automatic centre"
    return plan.center, plan.center_method


def auto_old_center(cfg: ReconConfig) -> bool:
    """Whether the plan finds ``recon.sino_360_to_180.old_center``."""
    s = cfg.sino_360_to_180
    return s.enabled and s.old_center in (None, "auto")


def resolve_recon(plan: Plan, cfg: TomoConfig) -> ReconConfig:
    """``cfg.recon`` with an automatic ``sino_360_to_180.old_center`` replaced by the plan's."""
    return _with_old_center(cfg.recon, plan.old_center) if auto_old_center(cfg.recon) else cfg.recon


def _with_old_center(recon: ReconConfig, old_center: float | None) -> ReconConfig:
    s360 = recon.sino_360_to_180.model_copy(update={"old_center": old_center})
    return recon.model_copy(update={"sino_360_to_180": s360})


def _axis(cfg: TomoConfig, scan: Scan, crop: tuple[int, int, int, int], search: bool
          ) -> tuple[float | None, float | None, float | None, str]:
    """(axis, old_center, centre, how): the axis found in the projections (detector columns), the
    automatic old_center (detector columns), the automatic centre (reconstruction columns), and how.

    The search (`tomosnake.recon.center.center_from_scan`, a few frames only) runs when something automatic needs
    it; ``search=False`` (preflight) puts placeholders of the same layout: the middle, and for an
    automatic old_center the widest stitched sinogram the search allows.
    """
    from tomosnake.recon.center import center_from_scan

    r, width = cfg.recon, crop[3] - crop[2]
    s360 = r.sino_360_to_180
    auto_old = auto_old_center(r)
    axis, how = None, "config"
    if r.center is None and not (s360.enabled and not auto_old) or auto_old:
        if search and r.lamino.enabled:
            axis, how = _lamino_center(cfg, scan, crop)
        elif search:
            found = center_from_scan(scan, crop, r.center_search.pairs)
            # 0.01 px, as the try series names centres; the search is good to a few hundredths at best
            axis, how = round(found.center, 2), f"automatic: {found.method}"
        else:
            overlap = math.ceil(MIN_OVERLAP_FRACTION * width)
            axis, how = (overlap / 2 if auto_old else (width - 1) / 2), "placeholder (preflight)"
    if not s360.enabled:
        return axis, None, (axis if r.center is None else None), how
    old = axis if auto_old else float(s360.old_center)  # type: ignore[arg-type]
    assert old is not None
    key = "recon.sino_360_to_180.old_center"
    if not 0 < old < width - 1:
        raise PlanError(f"config key '{key}': {'the automatic axis ' if auto_old else ''}{old:.2f} is outside the "
                        f"detector (0 to {width - 1} pixels after cropping)")
    if r.center is not None:
        return axis, (old if auto_old else None), None, how
    center = steps.center_after_360(old, width)
    how = (f"{how}; half acquisition: axis {old:.2f} in detector columns" if auto_old
           else f"from {key} {old:g} (detector columns)")
    return axis, (old if auto_old else None), center, f"{how}, {center:.2f} in the stitched sinogram"


def _lamino_center(cfg: TomoConfig, scan: Scan, crop: tuple[int, int, int, int]) -> tuple[float, str]:
    """Laminography: Vo's 180-degree method (algotom) on the row-sum sinogram of at most
    `CENTER_MAX_ANGLES` evenly spaced projections (no single row is mirror-symmetric)."""
    from tomosnake.recon.center import estimate_center

    step = max(1, math.ceil(scan.info.n_proj / CENTER_MAX_ANGLES))
    sino, theta = _row_sum_sinogram(scan, crop, step), np.asarray(scan.info.theta_deg)[::step]
    first_half = theta - theta.min() < 180 - 1e-6  # a full-field sinogram: Vo's 180-degree method
    found = estimate_center(sino[first_half], theta[first_half], ncore=cfg.threads)
    return float(found.center), f"automatic: {found.method}, on the sum of every detector row (laminography)"


def _row_sum_sinogram(scan: Scan, crop: tuple[int, int, int, int], step: int) -> np.ndarray:
    """Mean -log over every detector row of every ``step``-th projection, (angles, columns), read in row blocks.

    Tilted rays move a feature across rows as the sample turns, so no single row is mirror-symmetric
    at theta + 180 degrees; the sum over all rows is (it integrates whole planes u = const).
    """
    r0, r1 = crop[0], crop[1]
    picks = range(0, scan.info.n_proj, step)
    sino = np.zeros((len(picks), scan.info.n_cols))
    for b0 in range(r0, r1, CENTER_ROW_BLOCK):
        b1 = min(b0 + CENTER_ROW_BLOCK, r1)
        flat = scan.flats(b0, b1).mean(axis=0)
        dark = scan.darks(b0, b1).mean(axis=0)
        for i, p0 in enumerate(picks):
            proj = scan.projections(p0, p0 + 1, b0, b1)[0]
            trans = np.clip((proj - dark) / np.maximum(flat - dark, 1e-6), 1e-6, None)
            sino[i] += minus_log(trans).sum(axis=0)
    return (sino / (r1 - r0))[:, crop[2]:crop[3]]


def _lamino_slices_per_load(cfg: TomoConfig, geom: lamino.Geometry, theta: np.ndarray, n_proj: int) -> int:
    """The most output slices one laminography load holds within the recon budget, its row window included."""
    budget = budget_bytes(cfg, "recon") - FIXED_BYTES
    a = math.radians(geom.angle_deg)
    spread = 2 * lamino.lateral_radius(geom, theta) * math.sin(a)
    stripes = bool(stripe_passes(cfg.recon, cfg.preprocess.stripe))

    def need(s: int) -> int:
        rows = min(geom.n_rows, math.ceil((s - 1) * math.cos(a) + spread) + 2)  # the widest window of s slices
        return lamino.slab_bytes(n_proj, rows, s, geom.n_cols, cfg.recon, cfg.threads, stripes)

    if need(1) > budget:
        raise PlanError(f"config key '{cfg.budget_key('recon')}': one laminography slice of {n_proj} angles x "
                        f"{geom.n_cols} px reads up to {math.ceil(spread) + 2} detector rows and needs "
                        f"{need(1) / MB:.1f} MB; raise it to at least "
                        f"{cfg.overhead_mb + math.ceil((need(1) + FIXED_BYTES) / MB)}")
    lo, hi = 1, geom.height
    while lo < hi:  # need() grows with s
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= budget else (lo, mid - 1)
    return lo


def lamino_plan(geom: lamino.Geometry, theta: np.ndarray, chunks: list[tuple[int, int]], per_load: int) -> dict:
    """Each job's detector rows: the window of its slab, the rows its loads read, and the read amplification
    (rows read / detector rows) against a uniform split, where a slab does not map to rows and every load
    reads the whole detector."""
    windows, read = [], []
    for i0, i1 in chunks:
        loads = [lamino.row_window(geom, theta, a, min(a + per_load, i1)) for a in range(i0, i1, per_load)]
        windows.append((min(w[0] for w in loads), max(w[1] for w in loads)))
        read.append(sum(w[1] - w[0] for w in loads))
    n_loads = sum(math.ceil((i1 - i0) / per_load) for i0, i1 in chunks)
    return {"angle": geom.angle_deg, "height": geom.height, "radius": lamino.lateral_radius(geom, theta),
            "row_windows": windows, "rows_read": read,
            "read_amplification": sum(read) / geom.n_rows, "uniform_amplification": float(n_loads)}


def _recon_threads(cfg: TomoConfig, budget: int, n_proj: int, n_cols: int, recon: ReconConfig,
                   per_slice: int) -> int:
    """Reconstruction threads the budget holds with a slice: every thread shares the slice pairs in
    progress (`gridrec.reconstruct`) and costs only its strip's buffers (~50 MB at the bone scan's
    25134 angles x 16606 px), so the budget nearly always holds ``threads``. The volume does not depend on it."""
    for t in range(cfg.threads, 1, -1):
        if budget - block_overhead_bytes(n_proj, n_cols, recon, t) - FIXED_BYTES >= per_slice:
            return t
    return 1


def make_plan(cfg: TomoConfig, input_path: str, scan_name: str, search: bool = True) -> Plan:
    """Plan one scan from its metadata, a few sampled frames, the enabled steps and the memory budget.

    ``search=False`` skips the automatic centre (preflight: k, j and the estimates do not depend on it;
    with an automatic old_center they are those of the widest stitched sinogram the search allows).

    The backend is checked by name here; whether it is installed is checked by the jobs that run it.
    """
    check_backend(cfg.recon.backend, cfg.recon.algorithm, cfg.recon.filter_name, cfg.recon.algorithm_params())
    check_stripes(cfg)
    with open_scan(cfg, input_path) as scan:
        info: ScanInfo = scan.info
        stitch_offsets = scan.offsets if isinstance(scan, StitchedScan) else None
        stitch = scan.layout(cfg.stitch) if isinstance(scan, StitchedScan) else None
        scan.check_flats()
        warnings = scan.check_data()
        check_excluded(info.n_proj, cfg)
        chain = build_chain(cfg.preprocess, has_i0=info.has_i0, n_frames=max(info.n_flat, info.n_dark))
        if "i0_monitor" in chain.names:  # the I0 correction divides by the beam monitor
            scan.check_i0()
        crop = output_window(info.n_rows, info.n_cols, cfg.preprocess)
        check_size(info.n_proj, crop[3] - crop[2], cfg)
        with timings.phase("center"):
            axis, old_center, center, center_method = _axis(cfg, scan, crop, search)
    recon = cfg.recon if old_center is None else _with_old_center(cfg.recon, old_center)
    if cfg.recon.center is not None:
        check_center(cfg.recon.center, output_width(crop[3] - crop[2], recon))
    tile = subchunk_shape(chain, budget_bytes(cfg, "preprocess"), info.n_proj, info.n_rows, info.n_cols,
                          threads=cfg.threads)
    out_rows, out_cols = crop[1] - crop[0], crop[3] - crop[2]

    # A preprocessing job handles about `subchunks_per_job` tiles. No correction needs every
    # projection (stripe removal runs in the reconstruction stage), so k grows with the scan.
    assert chain.needs.proj is not FULL, "a preprocessing step needs every projection"
    tiles_per_proj_block = math.ceil(out_rows / tile[1])
    proj_per_job = tile[0] * max(1, math.ceil(cfg.subchunks_per_job / tiles_per_proj_block))
    k = min(math.ceil(info.n_proj / proj_per_job), cfg.max_chunk_jobs)

    per_slice = slice_bytes(info.n_proj, out_cols, recon, cfg.preprocess.stripe)
    budget = budget_bytes(cfg, "recon")
    recon_threads = (cfg.threads if cfg.recon.lamino.enabled
                     else _recon_threads(cfg, budget, info.n_proj, out_cols, recon, per_slice))
    # The same allowance for HDF5 caches and allocator slack as in preprocessing.
    fixed = block_overhead_bytes(info.n_proj, out_cols, recon, recon_threads) + FIXED_BYTES
    lamino_info, n_out = None, out_rows
    if cfg.recon.lamino.enabled:  # slabs of output slices, each reading the detector rows its geometry needs
        # Without the search (preflight) any centre on the detector gives the same k and j.
        known = center if center is not None else cfg.recon.center
        geom = lamino.geometry(cfg.recon, out_rows, out_cols, 0.0 if known is None else known)
        theta = np.asarray(info.theta_deg)
        slices_per_load = _lamino_slices_per_load(cfg, geom, theta, info.n_proj)
        n_out = geom.height
        sino_chunks = split(n_out, min(math.ceil(n_out / (slices_per_load * cfg.subchunks_per_job)),
                                       cfg.max_chunk_jobs))
        lamino_info = lamino_plan(geom, theta, sino_chunks, slices_per_load)
    else:
        pair = SLICE_PAIR if budget - fixed >= SLICE_PAIR * per_slice else 1
        slices_per_load = (budget - fixed) // (pair * per_slice) * pair
        if slices_per_load < 1:
            need = fixed + per_slice
            raise PlanError(f"config key '{cfg.budget_key('recon')}': one slice of {info.n_proj} angles x "
                            f"{out_cols} px needs {need / MB:.1f} MB for reconstruction; raise it to at least "
                            f"{cfg.overhead_mb + math.ceil(need / MB)}")
        # At most `max_chunk_jobs`: a scan of thousands of loads gets more loads per job, not more jobs.
        j = min(math.ceil(out_rows / (slices_per_load * cfg.subchunks_per_job)), cfg.max_chunk_jobs)
        sino_chunks = split(out_rows, j, pair)
    width = output_width(out_cols, recon)
    out_item = np.dtype(cfg.recon.convert.output_dtype).itemsize
    estimates = {
        "raw_bytes": info.raw_bytes,
        "preprocessed_bytes": info.n_proj * out_rows * out_cols * 4,
        "recon_chunk_bytes": n_out * width * width * out_item,
        "volume_bytes": n_out * width * width * out_item,
        "recon_budget_bytes": budget,
        "recon_bytes_per_slice": per_slice,
        "recon_bytes_fixed": fixed,
    }
    return Plan(scan=scan_name, input=str(input_path), info=_shallow(info), crop=crop,
                proj_chunks=split(info.n_proj, k), tile=tile, sino_chunks=sino_chunks,
                slices_per_load=int(slices_per_load), recon_width=width,
                center_method=center_method, log_applied=chain.log_applied, memory_mb=cfg.memory_mb,
                estimates=estimates, stitch_offsets=stitch_offsets, stitch=stitch, lamino=lamino_info,
                warnings=warnings, recon_threads=recon_threads,
                # without the search (preflight) the placeholders shaped the layout only
                center=center if search else None, axis=axis if search else None,
                old_center=old_center if search else None)


def smallest_memory_mb(cfg: TomoConfig, input_path: str, scan_name: str) -> int:
    """The smallest ``memory_mb`` (whole MB) with which the scan can be planned, by bisection (without the
    centre search, which does not change the layout)."""
    def fits(mb: int) -> bool:
        try:
            make_plan(cfg.model_copy(update={"memory_mb": float(mb)}), input_path, scan_name, search=False)
        except PlanError:
            return False
        return True

    lo, hi = math.floor(cfg.overhead_mb), 1 << 24
    if not fits(hi):
        raise PlanError(f"config key 'memory_mb': no budget up to {hi} MB holds the scan")
    while hi - lo > 1:  # fits(hi), not fits(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def write_plan(cfg: TomoConfig, input_path: str, scan_name: str, out_path: str | Path) -> Plan:
    """Make the plan and write it atomically as JSON."""
    plan = make_plan(cfg, input_path, scan_name)
    for warning in plan.warnings:
        log.warning("%s", warning)
    write_text(out_path, plan.to_json())
    return plan
