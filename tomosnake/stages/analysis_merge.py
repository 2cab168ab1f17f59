"""Rule analysis_merge: the slabs of the analyze_chunk jobs joined into the volume's labels and measurements.

Writes, beside the volume: ``<scan>_labels.h5`` (``/exchange/data``: phase of each voxel, uint8, 0 the
darkest; ``/exchange/objects``: object of each voxel, uint32, 1..count in raster order, 0 none; the
middle planes for the report under ``/process/tomosnake/analysis``), ``<scan>_analysis.json`` (phases
darkest first with their fractions, objects with their volumes) and ``<scan>_objects.csv`` (a row per
object). Objects that cross slab faces are joined once (`tomosnake.analysis.objects`). Memory: one slab
of labels at a time, the faces of two, and a few numbers per slab label.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from tomosnake.analysis import objects
from tomosnake.analysis.layout import Layout
from tomosnake.config import TomoConfig
from tomosnake.io.atomic import atomic_path, write_text
from tomosnake.stages.combine import chunk_shape

log = logging.getLogger(__name__)

PLANES = ("axial_grey", "axial_phases", "coronal_grey", "coronal_phases", "sagittal_grey", "sagittal_phases")
PLANES_GROUP = "process/tomosnake/analysis"
CSV_COLUMNS = ("id", "volume_voxels", "equivalent_diameter_voxels", "z0", "y0", "x0", "z1", "y1", "x1",
               "touches_edge")


def _units(chunk_paths: Sequence[str | Path]) -> list[tuple[str, str]]:
    """(file, group) of every slab, in slice order."""
    found = []
    for path in chunk_paths:
        with h5py.File(path, "r") as f:
            found += [(int(u), str(path)) for u in f["units"]]
    return [(path, f"units/{u}") for u, path in sorted(found)]


def analysis_merge(chunk_paths: Sequence[str | Path], volume_path: str | Path, lay: Layout, cfg: TomoConfig,
                   labels_path: str | Path, json_path: str | Path, csv_path: str | Path, scan: str) -> dict:
    """Write the labels file, the JSON and the CSV; return the JSON's content."""
    a = cfg.analysis
    units = _units(chunk_paths)
    counts: list[np.ndarray] = []
    bboxes: list[np.ndarray] = []
    pairs: list[np.ndarray] = []
    planes: dict[str, list[np.ndarray]] = {k: [] for k in PLANES}
    phase_voxels = np.zeros(a.phases, np.int64)
    face: objects.Face | None = None  # the previous slab's: two slabs' faces in memory at a time
    for path, group in units:
        with h5py.File(path, "r") as f:
            g = f[group]
            th = [float(t) for t in f.attrs["thresholds"]]
            counts.append(g["label_voxels"][()])
            bboxes.append(g["bbox"][()].astype(np.int64))
            below, face = face, objects.Face(g["objects"][0], g["objects"][-1],
                                             *(g[k][()] if k in g else None for k in ("behind", "ahead")))
            if below is not None:
                pairs.append(objects.joined_pairs(below, face))
            phase_voxels += g["phase_voxels"][()]
            for key in PLANES:
                if key in g:
                    planes[key].append(g[key][()])
    objs = objects.merge(counts, bboxes, pairs, min_voxels=a.min_voxels)
    first = objects.offsets(counts)
    _write_labels(units, objs, first, lay, th, planes, labels_path)
    with h5py.File(volume_path, "r") as f:
        um = f["exchange/data"].attrs.get("pixel_size_um")
    result = _result(scan, lay, cfg, th, phase_voxels, objs, None if um is None else float(um) * lay.factor,
                     volume_path, labels_path, csv_path)
    write_text(csv_path, _csv(objs, lay.shape))
    write_text(json_path, json.dumps(result, indent=1))
    log.info("analysis_merge: %d slabs, phases %s, %d objects", len(units),
             [round(p["fraction"], 4) for p in result["phases"]], result["objects"]["count"])
    return result


def _write_labels(units: list[tuple[str, str]], objs: objects.Objects, first: np.ndarray, lay: Layout,
                  th: list[float], planes: dict[str, list[np.ndarray]], out_path: str | Path) -> None:
    depth = min(64, max(b - a for a, b in lay.units))
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        out["implements"] = "exchange"
        phases = out.create_dataset("exchange/data", shape=lay.shape, dtype=np.uint8,
                                    chunks=chunk_shape(lay.shape, depth, 1))
        labels = out.create_dataset("exchange/objects", shape=lay.shape, dtype=np.uint32,
                                    chunks=chunk_shape(lay.shape, depth, 4))
        phases.attrs.update(thresholds=th, level=lay.level, factor=lay.factor,
                            meaning="phase of each voxel, 0 the darkest (tomosnake analysis)")
        labels.attrs["meaning"] = "object of each voxel, 1..count in raster order of their first voxel; 0: none"
        for u, (path, group) in enumerate(units):
            z0, z1 = lay.units[u]
            with h5py.File(path, "r") as f:
                phases[z0:z1] = f[group]["phases"][()]
                lut = np.concatenate([[0], objs.node_id[first[u]:first[u + 1]]]).astype(np.uint32)
                labels[z0:z1] = lut[f[group]["objects"][()]]
        for key, parts in planes.items():
            out[f"{PLANES_GROUP}/{key}"] = parts[0] if key.startswith("axial") else np.concatenate(parts)


def _result(scan: str, lay: Layout, cfg: TomoConfig, th: list[float], phase_voxels: np.ndarray,
            objs: objects.Objects, voxel_um: float | None, volume_path: str | Path, labels_path: str | Path,
            csv_path: str | Path) -> dict:
    a = cfg.analysis
    total = int(phase_voxels.sum())
    bounds = [None, *th, None]
    edge = objects.touches_edge(objs.bbox, lay.shape)
    return {
        "scan": scan, "volume": Path(volume_path).name, "labels": Path(labels_path).name,
        "csv": Path(csv_path).name, "level": lay.level, "factor": lay.factor, "shape": list(lay.shape),
        "voxel_size_um": voxel_um, "smooth": a.smooth, "thresholds": th, "watershed": a.watershed,
        "phases": [{"label": i, "fraction": int(n) / total, "voxels": int(n), "range": [bounds[i], bounds[i + 1]]}
                   for i, n in enumerate(phase_voxels)],
        "objects": {"phase": a.objects_of, "count": len(objs.volumes), "min_voxels": a.min_voxels,
                    "touching_edge": int(edge.sum()), "volumes_voxels": [int(v) for v in objs.volumes],
                    "equivalent_diameters_voxels": [round(float(d), 4)
                                                    for d in objects.equivalent_diameter(objs.volumes)]},
    }


def _csv(objs: objects.Objects, shape: tuple[int, int, int]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    diam = objects.equivalent_diameter(objs.volumes)
    edge = objects.touches_edge(objs.bbox, shape)
    for i, (v, d, box, e) in enumerate(zip(objs.volumes, diam, objs.bbox, edge, strict=True), start=1):
        w.writerow([i, int(v), f"{d:.4f}", *(int(b) for b in box), int(e)])
    return buf.getvalue()
