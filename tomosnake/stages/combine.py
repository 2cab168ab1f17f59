"""Join the reconstructed sinogram blocks into one DXchange volume, slab by slab, never the whole volume in memory.

One pass over the slices writes (physical mode) ``/exchange/data`` as (slices, y, x),
computes the block-mean pyramid ``/exchange/pyramid/<f>`` and the volume's statistics
and histogram (``/process/tomosnake/histogram``, read by the report), then the
provenance (`tomosnake.provenance`). In virtual mode ``/exchange/data`` is a VDS
over the recon chunk files and only the pyramid and statistics are real data.

Chunking: slabs of D slices (a power of two up to 64, as many as the memory
budget allows) are written whole, so HDF5 chunks are D slices deep and about
1 MiB, square in (y, x): a slice along any axis then reads a bounded share of
the file (one chunk row), and no chunk is ever rewritten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from tomosnake import provenance
from tomosnake.io.atomic import atomic_path
from tomosnake.config import TomoConfig
from tomosnake.stages.plan import Plan
from tomosnake.io.pyramid import Pyramid, level_shape
from tomosnake.io.vds import stack

log = logging.getLogger(__name__)

MAX_DEPTH = 64
CHUNK_BYTES = 1 << 20
HIST_BINS = 256
HIST_SAMPLE_SLICES = 8
PYRAMID_GROUP = "exchange/pyramid"
HIST_PATH = "process/tomosnake/histogram"


def slab_depth(shape: tuple[int, int, int], dtype: np.dtype, factors: Sequence[int], budget_bytes: int,
               threads: int = 1) -> int:
    """Slices per slab: a power of two <= 64 whose slab, pyramid sums and buffers fit ``budget_bytes``."""
    item = np.dtype(dtype).itemsize
    area = shape[1] * shape[2]
    fixed = area * 9 * max(1, threads)  # a float64 slice and a mask per statistics thread
    per_px = float(item)
    if factors:  # reduceat along x at the finest factor, then sums and output buffers per level
        per_px += 8 / min(factors) + sum((8 + item) / f**2 for f in factors)
    fit = max(1, int((budget_bytes - fixed) // (area * per_px)))
    return max(1, min(1 << int(math.log2(min(fit, MAX_DEPTH))), shape[0]))


def chunk_shape(shape: Sequence[int], depth: int, itemsize: int) -> tuple[int, int, int]:
    """HDF5 chunks ``depth`` slices deep and about `CHUNK_BYTES`, square in (y, x), within the shape."""
    side = 2 ** round(math.log2(math.sqrt(CHUNK_BYTES / (depth * itemsize))))
    side = min(512, max(64, side))
    return (max(1, min(depth, shape[0])), max(1, min(side, shape[1])), max(1, min(side, shape[2])))


@dataclass
class Stats:
    """The volume's statistics. Exact over every voxel: count, non-finite, min, max and the counts outside
    the histogram (under/overflow: clipping). From a fixed sample (every `STATS_STEP`-th voxel in y and
    x of every slice, so the same whatever k and j): the histogram, mean and std. Exact float64 figures
    of every voxel cost about ten times the volume's read and write (issue 15); a 1-in-16 sample leaves
    a report's histogram and moments unchanged to the digits shown."""

    count: int = 0
    nan: int = 0
    min: float = math.inf
    max: float = -math.inf
    sampled: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    underflow: int = 0
    overflow: int = 0

    def add(self, slab: np.ndarray, edges: np.ndarray, counts: np.ndarray, threads: int = 1) -> None:
        """Add every voxel of ``slab``; slices in ``threads`` threads (NumPy releases the GIL), their
        figures added in slice order, so the sums do not depend on the thread count."""
        lo, hi = float(edges[0]), float(edges[-1])
        with ThreadPoolExecutor(max(1, threads)) as pool:
            parts = list(pool.map(lambda s: _slice_stats(s, lo, hi, len(counts)), slab))
        for n, nan, vmin, vmax, sampled, total, sq, hist, under, over in parts:
            self.nan += nan
            if n == 0:
                continue
            self.count += n
            self.min, self.max = min(self.min, vmin), max(self.max, vmax)
            self.sampled += sampled
            self.sum += total
            self.sumsq += sq
            counts += hist
            self.underflow += under
            self.overflow += over

    @property
    def mean(self) -> float:
        return self.sum / self.sampled if self.sampled else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(max(0.0, self.sumsq / self.sampled - self.mean**2)) if self.sampled else math.nan


STATS_STEP = 4  # the histogram, mean and std sample every 4th voxel in y and in x


def _slice_stats(s: np.ndarray, lo: float, hi: float, bins: int) -> tuple:
    """One slice's finite count, non-finite count, min, max, under/overflow (every voxel, in the slice's own
    dtype) and its sample's size, sum, sum of squares (float64) and histogram."""
    sample = s[::STATS_STEP, ::STATS_STEP]
    nan = 0
    if np.issubdtype(s.dtype, np.floating):
        finite = np.isfinite(s)
        nan = s.size - int(np.count_nonzero(finite))
        if nan:
            s, sample = s[finite], sample[finite[::STATS_STEP, ::STATS_STEP]]
    if s.size == 0:
        return (0, nan, math.inf, -math.inf, 0, 0.0, 0.0, 0, 0, 0)
    v = sample.astype(np.float64).ravel()
    hist = np.histogram(v, bins=bins, range=(lo, hi))[0]  # equal bins: no sorting
    return (s.size, nan, float(s.min()), float(s.max()), v.size, float(v.sum()), float(np.dot(v, v)), hist,
            int(np.count_nonzero(s < lo)), int(np.count_nonzero(s > hi)))


def histogram_edges(dtype: np.dtype, sample: np.ndarray) -> np.ndarray:
    """Integer volumes: the whole dtype range (clipping shows at both ends). Float volumes: the sample's
    0.1-99.9 percentile range widened by a quarter each side, so outliers fall under/overflow."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.linspace(info.min, info.max + 1, HIST_BINS + 1)
    finite = sample[np.isfinite(sample)]
    lo, hi = np.percentile(finite, [0.1, 99.9]) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return np.linspace(lo - span / 4, hi + span / 4, HIST_BINS + 1)


class _Sources:
    """Slabs of consecutive slices read from the recon chunk files, into one reused buffer."""

    def __init__(self, parts: list[tuple[str | Path, int, int]], shape: tuple[int, int, int], dtype: np.dtype):
        self.parts, self.shape, self.dtype = parts, shape, dtype

    def read(self, z0: int, z1: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((z1 - z0, *self.shape[1:]), self.dtype) if out is None else out[:z1 - z0]
        for path, a, b in self.parts:
            lo, hi = max(a, z0), min(b, z1)
            if lo < hi:
                with h5py.File(path, "r") as f:
                    f["exchange/data"].read_direct(out, np.s_[lo - a:hi - a], np.s_[lo - z0:hi - z0])
        return out

    def slabs(self, depth: int) -> Iterator[tuple[int, np.ndarray]]:
        buf = np.empty((depth, *self.shape[1:]), self.dtype)
        for z0 in range(0, self.shape[0], depth):
            yield z0, self.read(z0, min(z0 + depth, self.shape[0]), buf)

    def sample(self, n: int, per_slice: int = 1 << 16) -> np.ndarray:
        """Values of ``n`` evenly spaced slices, each thinned to about ``per_slice`` values (float64)."""
        rows = np.unique(np.linspace(0, self.shape[0] - 1, min(n, self.shape[0])).round().astype(int))
        step = max(1, math.ceil(math.sqrt(self.shape[1] * self.shape[2] / per_slice)))
        return np.concatenate([self.read(int(r), int(r) + 1)[0, ::step, ::step].astype(np.float64).ravel()
                               for r in rows])


def _one_pass(f: h5py.File, src: _Sources, factors: Sequence[int], depth: int, write_volume: bool,
              threads: int = 1) -> Stats:
    """Stream the volume once: write it (physical mode), the pyramid levels, statistics and histogram."""
    shape, dtype = src.shape, src.dtype
    if write_volume:
        data = f.create_dataset("exchange/data", shape=shape, dtype=dtype,
                                chunks=chunk_shape(shape, depth, dtype.itemsize))
    levels = {}
    for fac in factors:
        lshape = level_shape(shape, fac)
        levels[fac] = f.create_dataset(f"{PYRAMID_GROUP}/{fac}", shape=lshape, dtype=dtype,
                                       chunks=chunk_shape(lshape, depth, dtype.itemsize))
        levels[fac].attrs.update(factor=fac, method="block mean (partial blocks at the far edges: mean of "
                                 "the voxels they hold)", axes="z:y:x")
    edges = histogram_edges(dtype, src.sample(HIST_SAMPLE_SLICES))
    counts = np.zeros(HIST_BINS, np.int64)
    stats = Stats()
    pyramid = Pyramid(shape, factors, dtype, depth)
    for z0, slab in src.slabs(depth):
        if write_volume:
            data.write_direct(slab, dest_sel=np.s_[z0:z0 + len(slab)])
        for fac, lz0, block in pyramid.add(z0, slab):
            levels[fac].write_direct(block, dest_sel=np.s_[lz0:lz0 + len(block)])
        stats.add(slab, edges, counts, threads)
        log.info("combine: slices %d-%d of %d", z0, z0 + len(slab), shape[0])
    hist = f.create_dataset(HIST_PATH, data=counts)
    f[HIST_PATH + "_edges"] = edges
    hist.attrs.update(asdict(stats) | {"mean": stats.mean, "std": stats.std})
    return stats


def volume_parts(recon_paths: Sequence[str | Path], plan: Plan) -> list[tuple[str | Path, int, int]]:
    return [(p, r0, r1) for p, (r0, r1) in zip(recon_paths, plan.sino_chunks, strict=True)]


def combine(recon_paths: Sequence[str | Path], plan: Plan, cfg: TomoConfig, conv_range: dict,
            out_path: str | Path, config_path: str | Path | None = None, input_sha256: str | None = None) -> Stats:
    """Write the scan's volume file (physical, or a VDS over ``recon_paths``) and, if given, the run's config file.

    Returns the volume's statistics.
    """
    with h5py.File(recon_paths[0], "r") as f:
        dtype = f["exchange/data"].dtype
        width = f["exchange/data"].shape[1:]
    shape = (plan.n_slices, *width)
    factors = cfg.output.pyramid
    budget = int(max(0.0, cfg.memory_mb - cfg.overhead_mb) * 2**20)  # this job's resources: memory_mb
    depth = slab_depth(shape, dtype, factors, budget, cfg.threads)
    log.info("combine: %s volume %s %s, slabs of %d slices, pyramid %s", cfg.output.combine, shape, dtype,
             depth, factors or "none")
    with atomic_path(out_path) as tmp:
        virtual = cfg.output.combine == "virtual"
        if virtual:
            stack(recon_paths, tmp)
        # Virtual or not, the slices are read from the chunk files (what the VDS maps to).
        src = _Sources(volume_parts(recon_paths, plan), shape, dtype)
        with h5py.File(tmp, "r+" if virtual else "w") as f:
            f["implements"] = "exchange"
            stats = _one_pass(f, src, factors, depth, write_volume=not virtual, threads=cfg.threads)
            provenance.write(f, cfg, plan, conv_range, config_path, input_sha256)
    if config_path is not None:
        provenance.write_config_file(cfg, plan, config_path)
    return stats


def read_histogram(f: h5py.File) -> tuple[np.ndarray, np.ndarray, dict]:
    """(counts, edges, statistics) as written by `combine`."""
    hist = f[HIST_PATH]
    return hist[()], f[HIST_PATH + "_edges"][()], dict(hist.attrs)


def pyramid_levels(f: h5py.File) -> dict[int, h5py.Dataset]:
    """The pyramid levels of a volume file by factor (empty without a pyramid)."""
    group = f.get(PYRAMID_GROUP)
    return {} if group is None else {int(k): group[k] for k in sorted(group, key=int)}
