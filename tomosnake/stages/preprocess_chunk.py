"""The pre-processing chain and its chunk driver: tiles read with overlaps, exactly equal to whole-stack processing.

`build_chain` turns the config into the ordered list of enabled corrections
(`tomosnake.corrections`) and the overlap they need together: a step needing n
rows after a step needing m needs m + n from the raw data, so overlaps add up;
FULL means the whole axis. `process_chunk` reads each tile of a block of
projections with that overlap (clipped to the scan), runs the chain, trims the
overlap and writes the tile; `process_whole` runs the same chain on the whole
stack, the reference the tiled result must equal.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path
from tomosnake.config import PreprocessConfig
from tomosnake.corrections import FULL, Context, Facts, Needs, Step, configured_steps
from tomosnake.corrections.base import Extent
from tomosnake.corrections.crop import window
from tomosnake.io.scan import RawScan
from tomosnake.io.stitched_scan import Scan

__all__ = ["FULL", "Chain", "MemoryBudgetError", "Needs", "build_chain", "output_window", "process_chunk",
           "process_rows", "process_whole", "subchunk_shape"]

log = logging.getLogger(__name__)

MB = 1 << 20
READ_TRANSIENT = 0.5  # raw 16-bit frames held beside their float32 copy while reading, in blocks
FIXED_BYTES = 16 * MB  # HDF5 chunk cache, FFT plans, allocator slack: measured 14 MB over the model at 1.5 GB


class MemoryBudgetError(ValueError):
    """Even the smallest tile does not fit the memory budget; the message gives the budget that would."""


@dataclass(frozen=True)
class Chain:
    """The enabled steps of a config, in order, and what they need together."""

    steps: tuple[Step, ...]
    needs: Needs
    cfg: PreprocessConfig

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    @property
    def log_applied(self) -> bool:
        return self.cfg.minus_log_before_phase or self.cfg.minus_log_after_phase

    def peak_bytes(self, shape: tuple[int, int, int], threads: int = 1) -> int:
        """Peak working memory for a read block of ``shape`` (projections, rows, columns).

        The block, what steps keep across tiles, the largest transient (the read's
        raw copy or one step's working memory; steps run one after another) and a
        fixed allowance.
        """
        block = int(np.prod(shape)) * 4
        resident = sum(s.resident(shape, threads) for s in self.steps)
        transient = max([READ_TRANSIENT * block] + [s.work(shape, threads) for s in self.steps])
        return int(block + resident + transient + FIXED_BYTES)

    def bytes_factor(self, shape: tuple[int, int, int], threads: int = 1) -> float:
        """Peak working memory / float32 size of the read block."""
        return self.peak_bytes(shape, threads) / (int(np.prod(shape)) * 4)

    def run(self, block: np.ndarray, ctx: Context) -> tuple[np.ndarray, Context]:
        """Apply every step; returns the block and its context in the output coordinates.

        Pass the only reference to ``block``: a step that returns a new array
        (crop) frees the old one.
        """
        for step in self.steps:
            block = step.apply(block, ctx)
            if step.reframe is not None:
                ctx = step.reframe(ctx)
        return block, ctx


def build_chain(cfg: PreprocessConfig, has_i0: bool | None = None, n_frames: int | None = None) -> Chain:
    """The chain of enabled corrections; ``has_i0`` (the scan has a beam monitor) refines I0's source 'auto',
    ``n_frames`` (the larger of the flat and dark stacks) the memory estimate."""
    steps = tuple(configured_steps(cfg, Facts(has_i0=has_i0, n_frames=n_frames)))
    needs = Needs()
    for step in steps:
        needs = needs.then(step.needs)
    return Chain(steps, needs, cfg)


def output_window(n_rows: int, n_cols: int, cfg: PreprocessConfig) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) of the selected image kept after the crop."""
    return window(n_rows, n_cols, cfg)


def _read_extent(a: int, b: int, need: Extent, n: int) -> tuple[int, int]:
    """Range to read for output ``a:b`` with ``need`` on each side, clipped to ``0:n``."""
    if need is FULL:
        return 0, n
    return max(0, a - need), min(n, b + need)  # type: ignore[operator]


def _read_shape(chain: Chain, tile: tuple[int, int], n_proj: int, n_rows: int, n_cols: int) -> tuple[int, int, int]:
    tp, tr = tile
    p = n_proj if chain.needs.proj is FULL else min(n_proj, tp + 2 * chain.needs.proj)  # type: ignore[operator]
    r = n_rows if chain.needs.rows is FULL else min(n_rows, tr + 2 * chain.needs.rows)  # type: ignore[operator]
    return p, r, n_cols


def _largest(fits: Callable[[int], bool], hi: int) -> int:
    """Largest n in 1..hi with fits(n), fits monotone decreasing; 0 if none."""
    lo, best = 1, 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def subchunk_shape(chain: Chain, budget_bytes: int, n_proj: int, n_rows: int, n_cols: int,
                   threads: int = 1) -> tuple[int, int]:
    """(projections, rows) of the largest output tile whose read, overlaps included, fits ``budget_bytes``.

    Whole rows are preferred (no row overlap to read twice); with the projection
    axis FULL the tile holds every projection. ``n_rows``/``n_cols`` are the
    selected (uncropped) sizes.
    """
    r0, r1, _, _ = window(n_rows, n_cols, chain.cfg)
    out_rows = r1 - r0

    def fits(tp: int, tr: int) -> bool:
        return chain.peak_bytes(_read_shape(chain, (tp, tr), n_proj, n_rows, n_cols), threads) <= budget_bytes

    full_p = chain.needs.proj is FULL
    tp_min = n_proj if full_p else 1
    tr_min = out_rows if chain.needs.rows is FULL else 1
    if not fits(tp_min, tr_min):
        need = chain.peak_bytes(_read_shape(chain, (tp_min, tr_min), n_proj, n_rows, n_cols), threads)
        raise MemoryBudgetError(
            f"pre-processing ({', '.join(chain.names) or 'no corrections'}) needs at least "
            f"{_ceil_mb(need)} MB for its smallest tile ({tp_min} projection(s) x {tr_min} row(s) of "
            f"{n_cols} px, overlap {chain.needs}); the budget is {budget_bytes / MB:.1f} MB")
    if full_p:
        return n_proj, (tr_min if tr_min == out_rows else _largest(lambda tr: fits(n_proj, tr), out_rows))
    if fits(1, out_rows):
        return _largest(lambda tp: fits(tp, out_rows), n_proj), out_rows
    return 1, _largest(lambda tr: fits(1, tr), out_rows)


def _ceil_mb(nbytes: int) -> int:
    return -(-nbytes // MB)


def _threads(threads: int | None) -> int:
    return threads or len(os.sched_getaffinity(0))


def _tiles(a: int, b: int, step: int) -> list[tuple[int, int]]:
    return [(s, min(s + step, b)) for s in range(a, b, step)]


Tile = tuple[np.ndarray, tuple, tuple[int, int, int, int]]


def _processed_tiles(scan: Scan, chain: Chain, rows: tuple[int, int], projs: tuple[int, int],
                     tile: tuple[int, int], threads: int) -> Iterator[Tile]:
    """Output rows ``rows`` (after the crop) of projections ``projs``, tile by tile, each read with its overlap:
    (processed block, the output part of the block, (q0, q1, a, b) the tile's projections and rows). The
    caller drops its reference to a block before asking for the next (one block in memory at a time)."""
    info = scan.info
    r0 = output_window(info.n_rows, info.n_cols, chain.cfg)[0]
    tp, tr = (max(1, t) for t in tile)
    row_tiles = [rows] if chain.needs.rows is FULL else _tiles(*rows, tr)
    proj_tiles = [projs] if chain.needs.proj is FULL else _tiles(*projs, tp)
    n_tiles, done = len(row_tiles) * len(proj_tiles), 0
    for a, b in row_tiles:
        read_rows = _read_extent(r0 + a, r0 + b, chain.needs.rows, info.n_rows)
        cache: dict = {}
        for q0, q1 in proj_tiles:
            t0 = time.perf_counter()
            read_projs = _read_extent(q0, q1, chain.needs.proj, info.n_proj)
            ctx = Context(proj=read_projs, rows=read_rows, image=(info.n_rows, info.n_cols), raw_rows=read_rows,
                          source=scan, threads=threads, cache=cache)
            block, ctx = chain.run(scan.projections(*read_projs, *read_rows), ctx)
            src = np.s_[q0 - read_projs[0]:q1 - read_projs[0], a - ctx.rows[0]:b - ctx.rows[0], :]
            done += 1
            log.info("preprocess tile %d/%d: projections %d:%d rows %d:%d (read %d:%d x %d:%d) %.2f s",
                     done, n_tiles, q0, q1, a, b, *read_projs, *read_rows, time.perf_counter() - t0)
            yield block, src, (q0, q1, a, b)
            del block


def process_chunk(scan: Scan, cfg: PreprocessConfig, p0: int, p1: int, tile: tuple[int, int],
                  out_path: str | Path, *, threads: int | None = None,
                  after_tile: Callable[[], None] | None = None) -> None:
    """Pre-process projections ``p0:p1`` tile by tile into ``out_path`` (float32 /exchange/data), atomically.

    Every raw frame read is checked (`tomosnake.io.scan.check_frames`, and flats against the darks in
    `tomosnake.corrections.flatdark`): a fault stops the job naming file, dataset and frame. All-zero
    projections are usable: a warning in the log and in the dataset's ``warnings`` (JSON), for the report.

    ``after_tile`` is called after each tile is written (fault injection in tests).
    """
    info = scan.info
    chain = build_chain(cfg, has_i0=info.has_i0, n_frames=max(info.n_flat, info.n_dark))
    r0, r1, c0, c1 = output_window(info.n_rows, info.n_cols, cfg)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset("exchange/data", shape=(p1 - p0, r1 - r0, c1 - c0), dtype=np.float32)
        for block, src, (q0, q1, a, b) in _processed_tiles(scan, chain, (0, r1 - r0), (p0, p1), tile,
                                                          _threads(threads)):
            dset.write_direct(block, source_sel=src, dest_sel=np.s_[q0 - p0:q1 - p0, a:b, :])
            del block
            if after_tile is not None:
                after_tile()
        warning = scan.zero_warning(p0, p1)  # usable but odd: all-zero projections (README), in the log and the report
        if warning:
            log.warning("%s", warning)
        dset.attrs["warnings"] = json.dumps([warning] if warning else [])
        dset.attrs["log_applied"] = chain.log_applied
        dset.attrs["steps"] = chain.names
        dset.attrs["p0"] = p0
        dset.attrs["p1"] = p1
        dset.attrs["window"] = [r0, r1, c0, c1]


def process_rows(scan: Scan, cfg: PreprocessConfig, a: int, b: int, budget_bytes: int, *,
                 threads: int | None = None) -> np.ndarray:
    """Output rows ``a:b`` (after the crop) of every projection, in memory: what the chunk files hold at those
    rows, for a trial series after cleanup removed them. Projection tiles as large as ``budget_bytes`` holds
    beside the result (at least one projection)."""
    info = scan.info
    chain = build_chain(cfg, has_i0=info.has_i0, n_frames=max(info.n_flat, info.n_dark))
    r0, r1, c0, c1 = output_window(info.n_rows, info.n_cols, cfg)
    if not 0 <= a < b <= r1 - r0:
        raise ValueError(f"rows {a}:{b} are outside the {r1 - r0} pre-processed rows")
    out = np.empty((info.n_proj, b - a, c1 - c0), dtype=np.float32)
    left = budget_bytes - out.nbytes
    tp = _largest(lambda tp: chain.peak_bytes(_read_shape(chain, (tp, b - a), info.n_proj, info.n_rows,
                                                          info.n_cols)) <= left, info.n_proj)
    for block, src, (q0, q1, a0, b0) in _processed_tiles(scan, chain, (a, b), (0, info.n_proj), (tp, b - a),
                                                         _threads(threads)):
        out[q0:q1, a0 - a:b0 - a] = block[src]
        del block
    return out


def process_whole(scan: RawScan, cfg: PreprocessConfig, *, threads: int | None = None) -> np.ndarray:
    """The same chain on the whole selected stack at once (small data only): the reference for tiling."""
    info = scan.info
    chain = build_chain(cfg, has_i0=info.has_i0, n_frames=max(info.n_flat, info.n_dark))
    ctx = Context(proj=(0, info.n_proj), rows=(0, info.n_rows), image=(info.n_rows, info.n_cols),
                  raw_rows=(0, info.n_rows), source=scan, threads=_threads(threads))
    block, _ = chain.run(scan.projections(0, info.n_proj, 0, info.n_rows), ctx)
    return block
