"""Rules recon_chunk (one block of slices into its own file), try_center (one slice, several centres) and
try_lamino (one laminography slice, several tilt angles).

A block is a range of sinogram rows, or for laminography a slab of output slices read from the detector
rows its geometry needs (`tomosnake.recon.lamino.row_window`).

The arithmetic lives in `tomosnake.recon`; this module only reads blocks of
sinogram rows through the merged VDS, one memory load at a time, and writes
outputs atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import ReconConfig, TomoConfig
from tomosnake.io.atomic import atomic_path
from tomosnake.io.stitched_scan import open_scan
from tomosnake.io.volume_stats import ChunkStats
from tomosnake.recon import lamino, steps
from tomosnake.recon.backends import require_backend, run_tomocupy_lamino
from tomosnake.recon.chain import convert, reconstruct_block
from tomosnake.stages.plan import Plan, budget_bytes, resolve_center, resolve_recon
from tomosnake.stages.preprocess_chunk import process_rows

log = logging.getLogger(__name__)


def read_rows(vds: h5py.Dataset, r0: int, r1: int) -> np.ndarray:
    return vds[:, r0:r1, :].astype(np.float32, copy=False)


Rows = Callable[[int, int], np.ndarray]  # pre-processed rows [r0, r1) of every projection


@contextmanager
def preprocessed_rows(plan: Plan, cfg: TomoConfig, vds: str | Path | None = None,
                      raw: str | Path | None = None) -> Iterator[Rows]:
    """What a trial series reads: rows of the run's pre-processed data (``vds``) while they exist, else rows
    pre-processed from the raw file (``raw``, the first file of a stitched scan) on the spot, so that a series
    after cleanup recreates none of the run's files (which would make its next run redo every later stage)."""
    if vds is not None:
        with h5py.File(vds, "r") as f:
            yield lambda r0, r1: read_rows(f["exchange/data"], r0, r1)
        return
    if raw is None:
        raise ValueError("a trial series needs the pre-processed data or the raw file")
    budget = budget_bytes(cfg, "recon")
    with open_scan(cfg, raw, plan.stitch_offsets) as scan:
        yield lambda r0, r1: process_rows(scan, cfg.preprocess, r0, r1, budget, threads=plan.threads(cfg))


def lamino_geometry(plan: Plan, cfg: TomoConfig, center: float) -> lamino.Geometry:
    """The plan's laminography geometry with rotation axis ``center``."""
    _, n_rows, n_cols = plan.shape
    return lamino.geometry(cfg.recon, n_rows, n_cols, center)


def lamino_from_window(window: np.ndarray, r0: int, theta_deg: np.ndarray, plan: Plan, cfg: TomoConfig,
                       geom: lamino.Geometry, i0: int, i1: int, recon: ReconConfig | None = None) -> np.ndarray:
    """Laminography output slices [i0, i1) from detector rows [r0, r0 + rows) with the configured backend
    (``recon`` overrides ``cfg.recon``)."""
    recon = cfg.recon if recon is None else recon
    if recon.backend == "tomocupy":
        logged = recon.minus_log is True or (recon.minus_log == "auto" and not plan.log_applied)
        proj = steps.minus_log(window) if logged else window
        return run_tomocupy_lamino(proj, r0, theta_deg, geom.angle_deg, geom.center, geom.v_center,
                                   geom.z(np.arange(i0, i1)), geom.n_cols, recon.algorithm, recon.filter_name)
    threads = plan.threads(cfg)
    return lamino.reconstruct_slab(window, r0, theta_deg, recon, geom, i0, i1, plan.log_applied, threads,
                                   cfg.preprocess.stripe)


def reconstruct_slices(data: h5py.Dataset, plan: Plan, cfg: TomoConfig, center: float, i0: int, i1: int) -> np.ndarray:
    """Output slices [i0, i1) of the volume: sinogram rows, or a laminography slab read from the detector
    rows its geometry needs."""
    if plan.lamino:
        geom = lamino_geometry(plan, cfg, center)
        r0, r1 = lamino.row_window(geom, plan.theta_deg, i0, i1)
        return lamino_from_window(read_rows(data, r0, r1), r0, plan.theta_deg, plan, cfg, geom, i0, i1)
    return reconstruct_block(read_rows(data, i0, i1), plan.theta_deg, resolve_recon(plan, cfg), center,
                             plan.log_applied, plan.threads(cfg), cfg.preprocess.stripe)


def recon_chunk(vds_path: str | Path, plan: Plan, j: int, cfg: TomoConfig, conv_range: dict,
                out_path: str | Path, after_load: Callable[[], None] | None = None) -> None:
    """Reconstruct sinogram rows ``plan.sino_chunks[j]`` load by load into ``out_path``.

    Each load is written (and its statistics gathered) by a writer thread while the next one is
    reconstructed: the write is serial work, which would otherwise leave every thread but one idle for
    it (h5py releases the GIL while HDF5 writes). The plan's model holds the one load being written
    (`tomosnake.recon.chain.slice_bytes`). ``after_load`` is called after each load is written (fault
    injection in tests).
    """
    require_backend(cfg.recon.backend)  # here, where the job runs: the submit host need not have it
    r0, r1 = plan.sino_chunks[j]
    center, _ = resolve_center(plan, cfg)
    width = plan.recon_width
    dtype = conv_range["dtype"]
    # Loads of slices_per_load slices (even, like every chunk start: slice pairs do not depend on k and j).
    loads = plan.loads(j)
    with h5py.File(vds_path, "r") as src, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as dst, \
            ThreadPoolExecutor(1, thread_name_prefix="recon-writer") as writer:
        data = src["exchange/data"]
        out = dst.create_dataset("exchange/data", shape=(r1 - r0, width, width), dtype=dtype,
                                 chunks=(1, width, width))
        stats = ChunkStats((plan.n_slices, width, width))

        def store(n: int, a: int, b: int, vol: np.ndarray) -> None:
            out[a - r0:b - r0] = vol
            stats.add(a, vol)
            log.info("recon chunk %d: slices %d-%d of %d-%d done (%d/%d loads)", j, a, b, r0, r1, n, len(loads))

        written: Future[None] | None = None
        for n, (a, b) in enumerate(loads, 1):
            vol = reconstruct_slices(data, plan, cfg, center, a, b)
            if conv_range["enabled"]:
                vol = convert(vol, cfg.recon.convert, conv_range["min"], conv_range["max"])
            _written(written, after_load)
            written = writer.submit(store, n, a, b, vol)
            del vol  # the writer holds the load until it is written
        _written(written, after_load)
        out.attrs.update(row0=r0, row1=r1, center=center)
        stats.write(dst)


def _written(load: Future[None] | None, after_load: Callable[[], None] | None) -> None:
    """Wait for the writer's ``load`` (its error raised here), then call ``after_load``."""
    if load is None:
        return
    load.result()
    if after_load is not None:
        after_load()


def _lamino_slice(plan: Plan, index: int | None, key: str) -> int:
    """The output slice a laminography trial series reconstructs: ``index`` or the middle one."""
    i = plan.n_slices // 2 if index is None else index
    if i >= plan.n_slices:
        raise ValueError(f"config key '{key}': {i} is outside the {plan.n_slices} output slices")
    return i


def try_center(rows: Rows, plan: Plan, cfg: TomoConfig, out_dir: str | Path) -> list[Path]:
    """Reconstruct one slice for a series of centres (absolute pixels) and write a contact sheet.

    The slice is a preprocessed row, or for laminography an output slice from the detector rows it
    needs (its row window does not depend on the centre), read through ``rows`` (`preprocessed_rows`).
    """
    from tomosnake.recon.center import centers_around, try_centers

    require_backend(cfg.recon.backend)
    t = cfg.center_try
    middle = t.center if t.center is not None else resolve_center(plan, cfg)[0]
    centers = centers_around(middle, t.width, t.step)
    if plan.lamino:
        i = _lamino_slice(plan, t.row, "center_try.row")
        geom = lamino_geometry(plan, cfg, middle)
        r0, r1 = lamino.row_window(geom, plan.theta_deg, i, i + 1)
        window = rows(r0, r1)

        def one_lamino(w: np.ndarray, theta_deg: np.ndarray, center: float) -> np.ndarray:
            return _slab(w, r0, plan, cfg, geom.with_(center=center), i)

        return try_centers(window, plan.theta_deg, centers, one_lamino, out_dir,
                           title=f"{plan.scan}, slice {i}, tilt {geom.angle_deg:g}°")
    row = plan.shape[1] // 2 if t.row is None else t.row
    if row >= plan.shape[1]:
        raise ValueError(f"config key 'center_try.row': {row} is outside the {plan.shape[1]} preprocessed rows")
    sino = rows(row, row + 1)[:, 0, :]

    def one_slice(s: np.ndarray, theta_deg: np.ndarray, center: float) -> np.ndarray:
        return reconstruct_block(s[:, None, :], theta_deg, resolve_recon(plan, cfg), center, plan.log_applied,
                                 plan.threads(cfg), cfg.preprocess.stripe)[0]

    return try_centers(sino, plan.theta_deg, centers, one_slice, out_dir, title=f"{plan.scan}, row {row}")


def _slab(window: np.ndarray, r0: int, plan: Plan, cfg: TomoConfig, geom: lamino.Geometry, i: int) -> np.ndarray:
    """Output slice ``i`` of a laminography scan from detector rows [r0, r0 + rows)."""
    return lamino_from_window(window, r0, plan.theta_deg, plan, cfg, geom, i, i + 1)[0]


def try_lamino(rows: Rows, plan: Plan, cfg: TomoConfig, out_dir: str | Path) -> list[Path]:
    """Reconstruct one laminography slice for a series of tilt angles (absolute degrees) and a contact sheet,
    at the run's centre; the rows read are the union of every angle's row window."""
    from tomosnake.recon.center import LAMINO_SERIES, centers_around, try_centers

    if not plan.lamino:
        raise ValueError("config key 'recon.lamino.enabled': try_lamino needs a laminography scan")
    require_backend(cfg.recon.backend)
    t = cfg.lamino_try
    angles = centers_around(t.angle if t.angle is not None else cfg.recon.lamino.angle, t.width, t.step)
    if not (angles.min() > 0 and angles.max() < 90):
        raise ValueError(f"config key 'lamino_try.width': the series {angles.min():g}-{angles.max():g}° leaves "
                         "the open interval (0, 90) degrees")
    i = _lamino_slice(plan, t.slice, "lamino_try.slice")
    geom = lamino_geometry(plan, cfg, resolve_center(plan, cfg)[0])
    windows = [lamino.row_window(geom.with_(angle_deg=float(a)), plan.theta_deg, i, i + 1) for a in angles]
    r0, r1 = min(w[0] for w in windows), max(w[1] for w in windows)
    window = rows(r0, r1)

    def one_slice(w: np.ndarray, theta_deg: np.ndarray, angle: float) -> np.ndarray:
        return _slab(w, r0, plan, cfg, geom.with_(angle_deg=angle), i)

    return try_centers(window, plan.theta_deg, angles, one_slice, out_dir,
                       title=f"{plan.scan}, slice {i}, centre {geom.center:.2f} px", series=LAMINO_SERIES)
