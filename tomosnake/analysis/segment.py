"""One slab's segmentation: phases from global thresholds, and the objects of one phase.

The thresholds come from the whole volume's histogram, which the recon chunks recorded and combine
joined (`tomosnake.io.volume_stats`): Otsu's (`skimage.filters.threshold_multiotsu`, two classes) or
multi-Otsu's, the same for every slab. Smoothing (scipy's Gaussian) and the thresholding run on blocks
of rows with the filter's radius of overlap (`dask.array.map_overlap`, what dask-image's filters do) in
the job's threads; one task does both, so that no smoothed block outlives its task (dask-image's filter
and then a threshold held some 28 bytes a voxel). A voxel's value is the one a whole-volume filter gives,
as every slab is read with the filter's radius around it.
Objects: 6-connected components (`scipy.ndimage.label`), or a watershed of the distance transform
(`skimage.segmentation.watershed`) seeded at its maxima (`skimage.feature.peak_local_max`, one per
component at least); labels are numbered in raster order of their first voxel, so that merging the
slabs gives the same numbering whatever the slabs.
"""

from __future__ import annotations

from collections.abc import Sequence

import h5py
import numpy as np
from scipy import ndimage

from tomosnake.analysis.layout import AnalysisError, smooth_radius
from tomosnake.stages.combine import HIST_PATH, read_histogram

BLOCKS_PER_THREAD = 4  # Dask blocks of rows per thread: the blocks in flight hold a quarter of the slab or less


def thresholds(counts: np.ndarray, edges: np.ndarray, phases: int, source: str = "the histogram") -> list[float]:
    """``phases - 1`` increasing thresholds by multi-Otsu on a histogram; one line naming ``source`` if the
    histogram cannot separate that many classes."""
    from skimage.filters import threshold_multiotsu

    filled = int(np.count_nonzero(counts))
    if filled < phases:
        raise AnalysisError(f"{source}: {filled} non-empty bins cannot hold config key 'analysis.phases' {phases}")
    centres = (edges[:-1] + edges[1:]) / 2
    th = [float(t) for t in threshold_multiotsu(hist=(np.asarray(counts), centres), classes=phases)]
    if len(set(th)) < len(th):
        raise AnalysisError(f"{source}: no {phases} distinct classes in the histogram (config key 'analysis.phases')")
    return th


def volume_thresholds(volume_path: str, phases: int) -> list[float]:
    """The thresholds from the histogram in a volume file (``/process/tomosnake/histogram``)."""
    with h5py.File(volume_path, "r") as f:
        counts, edges, _ = read_histogram(f)
    return thresholds(counts, edges, phases, f"{volume_path} (/{HIST_PATH})")


def phase_labels(slab: np.ndarray, sigma: float, crop: tuple[int, int], th: Sequence[float],
                 threads: int) -> np.ndarray:
    """Phase of each voxel (uint8, 0 darkest) of ``slab`` less ``crop`` slices at each end, after an
    optional Gaussian of ``sigma`` (reflected at the slab's ends: a slab's end is the volume's, or lies
    ``crop`` or more slices beyond the part kept)."""
    import dask.array as da

    def block(b: np.ndarray) -> np.ndarray:
        g = ndimage.gaussian_filter(b, sigma, mode="reflect", truncate=4.0) if sigma > 0 else b
        out = np.zeros(g.shape, np.uint8)
        for t in th:  # the phase is the number of thresholds below the value (skimage's "> threshold")
            out += g > t
        return out

    radius = smooth_radius(sigma)  # rows of overlap, so that no block is thinner than it
    rows = max(8, radius, -(-slab.shape[1] // (BLOCKS_PER_THREAD * threads)))
    arr = da.from_array(slab, chunks=(-1, rows, -1))
    depth = radius if rows < slab.shape[1] else 0
    phases = arr.map_overlap(block, depth={0: 0, 1: depth, 2: 0}, boundary="none", dtype=np.uint8)
    return phases[crop[0]:len(slab) - crop[1]].compute(scheduler="threads", num_workers=threads)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of ``mask`` (int32, numbered in raster order by `scipy.ndimage.label`)."""
    return ndimage.label(mask)


def watershed(mask: np.ndarray, seed_distance: int) -> np.ndarray:
    """Touching particles of ``mask`` apart: a watershed of the distance transform from its maxima at least
    ``seed_distance`` apart (one per component at least). Labels int32, not in raster order."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed as skwatershed

    dist = ndimage.distance_transform_edt(mask)
    cc, _ = ndimage.label(mask)
    peaks = peak_local_max(dist, min_distance=seed_distance, labels=cc, exclude_border=False)
    del cc
    seeds = np.zeros(mask.shape, np.int32)
    seeds[tuple(peaks.T)] = 1
    seeds, _ = ndimage.label(seeds, structure=np.ones((3, 3, 3), bool))  # a plateau's peaks are one seed
    return skwatershed(-dist, seeds, mask=mask).astype(np.int32, copy=False)


def raster_order(labels: np.ndarray, top: int) -> tuple[np.ndarray, int]:
    """The renumbering (a lookup table over 0..``top``) of the labels in ``labels`` as 1..n in raster order
    of their first voxel there (0, and labels absent from ``labels``, to 0); and n. Slice by slice: the
    memory of one slice."""
    never = np.iinfo(np.int64).max
    first = np.full(top + 1, never, np.int64)
    area = labels[0].size if len(labels) else 0
    for z, plane in enumerate(labels):
        ids, at = np.unique(plane, return_index=True)
        new = first[ids] == never
        first[ids[new]] = z * area + at[new]
    first[0] = never
    ids = np.flatnonzero(first != never)
    lut = np.zeros(top + 1, np.int32)
    lut[ids[np.argsort(first[ids], kind="stable")]] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut, int(ids.size)


def label_stats(labels: np.ndarray, n: int, z0: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of each label 0..n (int64), and the bounding box of each label 1..n as (n, 6) int32 rows
    ``z0, y0, x0, z1, y1, x1`` (half-open; z from ``z0``, the first slice of ``labels`` in the volume)."""
    counts = np.zeros(n + 1, np.int64)
    for plane in labels:  # a slice at a time: bincount counts in a copy of its input as int64
        counts += np.bincount(plane.ravel(), minlength=n + 1)
    bbox = np.zeros((n, 6), np.int32)
    for i, sl in enumerate(ndimage.find_objects(labels, max_label=n)):
        if sl is not None:
            bbox[i] = (sl[0].start + z0, sl[1].start, sl[2].start, sl[0].stop + z0, sl[1].stop, sl[2].stop)
    return counts, bbox
