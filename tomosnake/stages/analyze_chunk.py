"""Rule analyze_chunk: the phases and objects of the slabs of one job, from the volume file at the analysis level.

Each slab (`tomosnake.analysis.layout`) is read with its halo, smoothed and thresholded
(`tomosnake.analysis.segment`), its objects labelled; the job's file holds per slab (group ``units/<u>``):
``phases`` (uint8) and ``objects`` (uint32, slab labels in raster order) of its core slices (with the
watershed also ``behind`` and ``ahead``: its regions' labels on the slices just outside the core), the
voxels of each phase and of each label, the labels' boxes, and for the report the grey values and phases
of its rows of the middle planes (and the middle slice, in the slab that holds it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from tomosnake.analysis import segment
from tomosnake.analysis.layout import Layout, seed_distance
from tomosnake.config import TomoConfig
from tomosnake.io.atomic import atomic_path
from tomosnake.report.timings import io_timer

log = logging.getLogger(__name__)
LABELS = ("objects", "behind", "ahead")  # stored as uint32


def analyze_unit(data: h5py.Dataset, lay: Layout, u: int, cfg: TomoConfig, th: list[float],
                 threads: int) -> dict[str, np.ndarray]:
    """Slab ``u``'s records (see the module)."""
    a = cfg.analysis
    nz, ny, nx = lay.shape
    z0, z1 = lay.units[u]
    s0, s1 = max(0, z0 - lay.halo_objects), min(nz, z1 + lay.halo_objects)  # phases kept for the objects
    r0, r1 = max(0, s0 - lay.halo_smooth), min(nz, s1 + lay.halo_smooth)  # slices read
    slab = np.empty((r1 - r0, ny, nx), np.float32)
    with io_timer():
        data.read_direct(slab, np.s_[r0:r1])
    phases = segment.phase_labels(slab, a.smooth, (s0 - r0, r1 - s1), th, threads)
    mask = phases == a.objects_of
    extra = {}
    if a.watershed:  # the regions in the core; their labels on the slices either side of it, for the merge
        regions = segment.watershed(mask, seed_distance(a))
        lut, n = segment.raster_order(regions[z0 - s0:z1 - s0], int(regions.max()))
        labels = lut[regions[z0 - s0:z1 - s0]]
        empty = np.zeros((ny, nx), np.int32)
        extra = {"behind": lut[regions[z0 - 1 - s0]] if z0 > s0 else empty,
                 "ahead": lut[regions[z1 - s0]] if z1 < s1 else empty}
        del regions
    else:
        labels, n = segment.components(mask[z0 - s0:z1 - s0])
    del mask
    core = phases[z0 - s0:z1 - s0]
    counts, bbox = segment.label_stats(labels, n, z0)
    grey = slab[z0 - r0:z1 - r0]
    phase_voxels = sum(np.bincount(plane.ravel(), minlength=a.phases) for plane in core)  # bincount copies
    out = extra | {
        "phases": core, "objects": labels, "phase_voxels": np.asarray(phase_voxels, np.int64),
        "label_voxels": counts, "bbox": bbox,
        "coronal_grey": grey[:, ny // 2].copy(), "coronal_phases": core[:, ny // 2].copy(),
        "sagittal_grey": grey[:, :, nx // 2].copy(), "sagittal_phases": core[:, :, nx // 2].copy()}
    if z0 <= nz // 2 < z1:
        out["axial_grey"], out["axial_phases"] = grey[nz // 2 - z0].copy(), core[nz // 2 - z0].copy()
    return out


def analyze_chunk(volume_path: str | Path, lay: Layout, job: int, cfg: TomoConfig, out_path: str | Path,
                  threads: int) -> None:
    """Write job ``job``'s slabs to ``out_path``."""
    th = segment.volume_thresholds(str(volume_path), cfg.analysis.phases)
    u0, u1 = lay.jobs[job]
    with h5py.File(volume_path, "r") as f, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        data = f[lay.dataset]
        out.attrs.update(thresholds=th, level=lay.level, shape=lay.shape)
        for u in range(u0, u1):
            rec = analyze_unit(data, lay, u, cfg, th, threads)
            g = out.create_group(f"units/{u}")
            g.attrs["z"] = lay.units[u]
            for key, val in rec.items():
                g.create_dataset(key, data=val, dtype=np.uint32 if key in LABELS else val.dtype)
            log.info("analyze_chunk: slab %d, slices %d-%d: %d labels", u, *lay.units[u], len(rec["label_voxels"]) - 1)
