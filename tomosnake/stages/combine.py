"""Join the reconstructed sinogram blocks into one DXchange volume, slab by slab, never the whole volume in memory.

One pass over the slices writes (physical mode) ``/exchange/data`` as (slices, y, x) and the
block-mean pyramid ``/exchange/pyramid/<f>``; nothing else is computed on the way, so the pass
runs at the disk's speed. In virtual mode ``/exchange/data`` is a VDS over the recon chunk files
and only a pyramid, if asked for, reads the slices. The statistics and histogram
(``/process/tomosnake/histogram``, read by the report) are joined from what the recon chunks
recorded (`tomosnake.io.volume_stats`); then the provenance (`tomosnake.provenance`).

Chunking: slabs of D slices (a power of two up to 64, as many as the memory
budget allows) are written whole, so HDF5 chunks are D slices deep and about
1 MiB, square in (y, x): a slice along any axis then reads a bounded share of
the file (one chunk row), and no chunk is ever rewritten.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np

from tomosnake import provenance
from tomosnake.io.atomic import atomic_path
from tomosnake.config import TomoConfig
from tomosnake.stages.plan import Plan
from tomosnake.io.pyramid import Pyramid, level_shape
from tomosnake.io.vds import stack
from tomosnake.io import volume_stats
from tomosnake.io.volume_stats import Stats

log = logging.getLogger(__name__)

MAX_DEPTH = 64
CHUNK_BYTES = 1 << 20
PYRAMID_GROUP = "exchange/pyramid"
HIST_PATH = "process/tomosnake/histogram"


def slab_depth(shape: tuple[int, int, int], dtype: np.dtype, factors: Sequence[int], budget_bytes: int) -> int:
    """Slices per slab: a power of two <= 64 whose slab, pyramid sums and buffers fit ``budget_bytes``."""
    item = np.dtype(dtype).itemsize
    area = shape[1] * shape[2]
    per_px = float(item)
    if factors:  # reduceat along x at the finest factor, then sums and output buffers per level
        per_px += 8 / min(factors) + sum((8 + item) / f**2 for f in factors)
    fit = max(1, int(budget_bytes // (area * per_px)))
    return max(1, min(1 << int(math.log2(min(fit, MAX_DEPTH))), shape[0]))


def chunk_shape(shape: Sequence[int], depth: int, itemsize: int) -> tuple[int, int, int]:
    """HDF5 chunks ``depth`` slices deep and about `CHUNK_BYTES`, square in (y, x), within the shape."""
    side = 2 ** round(math.log2(math.sqrt(CHUNK_BYTES / (depth * itemsize))))
    side = min(512, max(64, side))
    return (max(1, min(depth, shape[0])), max(1, min(side, shape[1])), max(1, min(side, shape[2])))


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


def _one_pass(f: h5py.File, src: _Sources, factors: Sequence[int], depth: int, write_volume: bool) -> None:
    """Stream the volume once (physical mode, or for a pyramid): write it and the pyramid levels."""
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
    pyramid = Pyramid(shape, factors, dtype, depth)
    for z0, slab in src.slabs(depth):
        if write_volume:
            data.write_direct(slab, dest_sel=np.s_[z0:z0 + len(slab)])
        for fac, lz0, block in pyramid.add(z0, slab):
            levels[fac].write_direct(block, dest_sel=np.s_[lz0:lz0 + len(block)])
        log.info("combine: slices %d-%d of %d", z0, z0 + len(slab), shape[0])


def _write_stats(f: h5py.File, recon_paths: Sequence[str | Path]) -> Stats:
    """The statistics, histogram and middle planes the recon chunks recorded (`tomosnake.io.volume_stats`),
    joined."""
    joined = volume_stats.join(recon_paths)
    hist = f.create_dataset(HIST_PATH, data=joined.counts)
    f[HIST_PATH + "_edges"] = joined.edges
    hist.attrs.update(asdict(joined.stats))
    f[volume_stats.CORONAL_PATH], f[volume_stats.SAGITTAL_PATH] = joined.coronal, joined.sagittal
    return joined.stats


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
    depth = slab_depth(shape, dtype, factors, budget)
    log.info("combine: %s volume %s %s, slabs of %d slices, pyramid %s", cfg.output.combine, shape, dtype,
             depth, factors or "none")
    with atomic_path(out_path) as tmp:
        virtual = cfg.output.combine == "virtual"
        if virtual:
            stack(recon_paths, tmp, atomic=False)  # tmp is combine's own temporary
        # Virtual or not, the slices are read from the chunk files (what the VDS maps to).
        src = _Sources(volume_parts(recon_paths, plan), shape, dtype)
        with h5py.File(tmp, "r+" if virtual else "w") as f:
            f["implements"] = "exchange"
            if factors or not virtual:
                _one_pass(f, src, factors, depth, write_volume=not virtual)
            stats = _write_stats(f, recon_paths)
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
