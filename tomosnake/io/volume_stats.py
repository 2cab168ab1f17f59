"""The volume's statistics and middle planes, gathered where its slices are made: in the recon_chunk jobs.

Each chunk file records, for its slices, the exact voxel count, non-finite count, min and max (attributes)
and a fixed sample: every `steps`-th slice of the volume and every `steps`-th voxel of it in y and x
(a dataset). The steps depend on the volume's shape only, so the sample, and everything computed from it,
is the same whatever k and j. `join` reads these and nothing else: combine never needs a pass over the
volume for its statistics (a virtual volume reads no slice at all), and its physical copy runs at IO speed.
The histogram, mean and std come from the sample (at most `SAMPLE_MAX` voxels): for a report, a sample of
millions of voxels gives the same figures as every voxel, to the digits shown.

Likewise each chunk keeps its slices' rows of the two middle planes across the slices (y = ny // 2, the
coronal plane; x = nx // 2, the sagittal one): the report shows them at full resolution without reading
the volume across its slices, which reads every slice of a slice-chunked or virtual volume (2.85 TB for
the seed paper's bone scan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

SAMPLE_PATH = "process/tomosnake/stats_sample"
CORONAL_PATH = "process/tomosnake/coronal"  # (slices, x) at y = ny // 2
SAGITTAL_PATH = "process/tomosnake/sagittal"  # (slices, y) at x = nx // 2
SLICE_SAMPLE_MAX = 1 << 20  # sampled voxels per sampled slice, at most
SAMPLE_MAX = 1 << 24  # sampled voxels in the whole volume, at most (64 MiB of float32)
MIN_STEP = 4  # at least every 4th voxel in y and x: the sample stays a small part of the chunk file
HIST_BINS = 256


def steps(shape: Sequence[int]) -> tuple[int, int]:
    """(every n-th slice, every n-th voxel in y and x) of a volume of ``shape`` = (slices, y, x) that is sampled."""
    n_z, n_y, n_x = shape
    step_yx = max(MIN_STEP, math.ceil(math.sqrt(n_y * n_x / SLICE_SAMPLE_MAX)))
    per_slice = math.ceil(n_y / step_yx) * math.ceil(n_x / step_yx)
    return math.ceil(n_z / max(1, SAMPLE_MAX // per_slice)), step_yx


@dataclass
class ChunkStats:
    """What one chunk file records: exact count, non-finite, min, max; the sample of its slices and their rows
    of the middle planes, in slice order."""

    shape: tuple[int, int, int]  # the whole volume's (slices, y, x)
    count: int = 0
    nan: int = 0
    min: float = math.inf
    max: float = -math.inf
    parts: list[np.ndarray] = field(default_factory=list)
    coronal: list[np.ndarray] = field(default_factory=list)
    sagittal: list[np.ndarray] = field(default_factory=list)

    def add(self, z0: int, slab: np.ndarray) -> None:
        """Slices ``z0 .. z0 + len(slab)`` of the volume."""
        step_z, step_yx = steps(self.shape)
        self.coronal.append(slab[:, self.shape[1] // 2, :].copy())
        self.sagittal.append(slab[:, :, self.shape[2] // 2].copy())
        first = -z0 % step_z  # the first slice of the slab whose volume index is a multiple of step_z
        sample = slab[first::step_z, ::step_yx, ::step_yx].ravel()
        n, lo, hi = slab.size, float(slab.min()), float(slab.max())  # a NaN or an infinity shows in them
        if not (math.isfinite(lo) and math.isfinite(hi)):  # only then a mask of the slab
            finite = slab[np.isfinite(slab)]
            n = finite.size
            lo, hi = (float(finite.min()), float(finite.max())) if n else (math.inf, -math.inf)
            sample = sample[np.isfinite(sample)]
        self.count += n
        self.nan += slab.size - n
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.parts.append(sample)

    def write(self, f: h5py.File) -> None:
        sample = np.concatenate(self.parts) if self.parts else np.empty(0, np.float32)
        ds = f.create_dataset(SAMPLE_PATH, data=sample)
        ds.attrs.update(count=self.count, nan=self.nan, min=self.min, max=self.max)
        f[CORONAL_PATH] = np.concatenate(self.coronal)
        f[SAGITTAL_PATH] = np.concatenate(self.sagittal)


@dataclass
class Stats:
    """The volume's statistics: count, non-finite, min and max exact; the rest from the sample."""

    count: int = 0
    nan: int = 0
    min: float = math.inf
    max: float = -math.inf
    sampled: int = 0
    mean: float = math.nan
    std: float = math.nan
    underflow: int = 0  # sampled voxels below the histogram's range
    overflow: int = 0  # and above it


def histogram_edges(dtype: np.dtype, sample: np.ndarray) -> np.ndarray:
    """Integer volumes: the whole dtype range (clipping shows at both ends). Float volumes: the sample's
    0.1-99.9 percentile range widened by a quarter each side, so outliers fall under/overflow."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.linspace(info.min, info.max + 1, HIST_BINS + 1)
    lo, hi = np.percentile(sample, [0.1, 99.9]) if sample.size else (0.0, 1.0)
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return np.linspace(lo - span / 4, hi + span / 4, HIST_BINS + 1)


@dataclass
class Joined:
    """The volume's records, joined from its chunk files: statistics, histogram, middle planes."""

    stats: Stats
    counts: np.ndarray  # histogram of the sample
    edges: np.ndarray
    coronal: np.ndarray  # (slices, x) at y = ny // 2
    sagittal: np.ndarray  # (slices, y) at x = nx // 2


def join(chunk_files: Sequence[str | Path]) -> Joined:
    """The volume's records from its chunk files' (one read of each), in slice order."""
    st, parts, coronal, sagittal, dtype = Stats(), [], [], [], None
    for path in chunk_files:
        with h5py.File(path, "r") as f:
            ds = f[SAMPLE_PATH]
            a = ds.attrs
            st.count += int(a["count"])
            st.nan += int(a["nan"])
            st.min, st.max = min(st.min, float(a["min"])), max(st.max, float(a["max"]))
            parts.append(ds[()])
            coronal.append(f[CORONAL_PATH][()])
            sagittal.append(f[SAGITTAL_PATH][()])
            dtype = f["exchange/data"].dtype
    sample = np.concatenate(parts).astype(np.float64) if parts else np.empty(0)
    edges = histogram_edges(np.dtype(dtype or np.float32), sample)
    # A count and a range take numpy's equal-bin path (its edges are ours, the same linspace); an
    # array of edges would sort the sample: 0.78 s against 0.23 s for 16 M voxels.
    counts = np.histogram(sample, bins=HIST_BINS, range=(edges[0], edges[-1]))[0]
    st.sampled = int(sample.size)
    if sample.size:
        st.mean, st.std = float(sample.mean()), float(sample.std())
        st.underflow = int(np.count_nonzero(sample < edges[0]))
        st.overflow = int(np.count_nonzero(sample > edges[-1]))
    return Joined(st, counts, edges, np.concatenate(coronal), np.concatenate(sagittal))
