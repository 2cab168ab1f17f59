"""The report's analysis page (`tomosnake.analysis`): the segmented middle slices over the grey values, the
thresholds on the volume's histogram, the phase fractions, and the objects' size distribution.

It reads ``<scan>_analysis.json`` and the middle planes that analysis_merge keeps in the labels file
(never the label volume itself).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import Flowable, KeepTogether, PageBreak, Paragraph, Table

from tomosnake.report.figures import BOLD, Histogram, fmt, reduce_for_display, window
from tomosnake.stages.analysis_merge import PLANES_GROUP
from tomosnake.stages.combine import read_histogram

# Phase colours over the grey values, darkest phase first (phase 0 is left uncoloured).
PHASE_RGB = ((0, 0, 0), (230, 80, 40), (40, 160, 230), (250, 200, 30), (120, 200, 80))
ALPHA = 0.45


def overlay(grey: np.ndarray, phases: np.ndarray) -> Image.Image:
    """The grey values (0.5-99.5 percentile window) with each phase but the darkest tinted in its colour."""
    g = reduce_for_display(grey)
    f = grey.shape[0] // g.shape[0] if g.shape != grey.shape else 1
    ph = phases[:g.shape[0] * f:f, :g.shape[1] * f:f] if f > 1 else phases
    lo, hi = window(g)
    rgb = np.repeat((np.clip((g - lo) / (hi - lo), 0, 1) * 255)[..., None], 3, axis=2)
    for p in range(1, int(ph.max(initial=0)) + 1):
        m = ph == p
        rgb[m] = (1 - ALPHA) * rgb[m] + ALPHA * np.asarray(PHASE_RGB[p % len(PHASE_RGB)], np.float64)
    return Image.fromarray(rgb.round().astype(np.uint8))


class OverlayPanel(Flowable):
    """An image with a title, ``width`` wide (rows at the image's aspect, at most ``max_height``)."""

    def __init__(self, image: Image.Image, title: str, width: float, max_height: float):
        super().__init__()
        self.image, self.title = image, title
        aspect = image.height / image.width
        self.iw = min(width, max_height / aspect)
        self.ih, self.width, self.height = self.iw * aspect, width, self.iw * aspect + 10

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        c = self.canv
        c.setFont(BOLD, 7.5)
        c.drawString(0, self.height - 7, self.title)
        c.drawImage(ImageReader(self.image), 0, 0, self.iw, self.ih)
        c.setStrokeColor(colors.Color(0.35, 0.35, 0.35))
        c.setLineWidth(0.3)
        c.rect(0, 0, self.iw, self.ih)


def analysis_page(json_path: str | Path, labels_path: str | Path, volume: h5py.File, text_w: float,
                  styles: dict, table) -> list:
    """The page's flowables (``styles``: h1, h2, body; ``table``: the report's table maker)."""
    r = json.loads(Path(json_path).read_text())
    with h5py.File(labels_path, "r") as f:
        planes = {k: f[f"{PLANES_GROUP}/{k}"][()] for k in f[PLANES_GROUP]}
    shape, objs = r["shape"], r["objects"]
    level = "the full volume" if r["level"] == 0 else f"pyramid level {r['level']} ({r['factor']}x block mean)"
    unit = f"{r['voxel_size_um']:g} µm voxels" if r.get("voxel_size_um") else "voxels"
    out: list = [PageBreak(), Paragraph("Analysis", styles["h1"]), Paragraph(
        f"Segmented {level}, {shape[0]} x {shape[1]} x {shape[2]} ({unit}), into {len(r['phases'])} phases by "
        f"{'Otsu' if len(r['phases']) == 2 else 'multi-Otsu'} thresholds on the volume's histogram"
        + (f" after a Gaussian of sigma {r['smooth']:g} voxels" if r["smooth"] else "") + f". Objects: the "
        f"6-connected regions of phase {objs['phase']}" + (", touching particles split by a watershed of the "
        "distance transform" if r["watershed"] else "") + f"; {r['labels']} holds both, {r['csv']} one row "
        "per object.", styles["body"])]
    rows = [["Phase", "Grey values", "Voxels", "Fraction"]]
    for p in r["phases"]:
        lo, hi = p["range"]
        rng = f"up to {fmt(hi)}" if lo is None else (f"above {fmt(lo)}" if hi is None else f"{fmt(lo)} to {fmt(hi)}")
        rows.append([str(p["label"]), rng, f"{p['voxels']:,}", f"<b>{p['fraction']:.4f}</b>"])
    counts, edges, _ = read_histogram(volume)
    hist = Histogram(counts, edges, text_w / 2 - 2 * mm, 45 * mm, "reconstructed value",
                     marks=[(t, f"t{i + 1}") for i, t in enumerate(r["thresholds"])])
    out.append(Table([[table(rows, [12 * mm, 32 * mm, 22 * mm, 18 * mm]), hist]],
                     colWidths=[text_w / 2, text_w / 2], hAlign="LEFT",
                     style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    third = text_w / 3 - 2 * mm
    panels = [OverlayPanel(overlay(planes[f"{k}_grey"], planes[f"{k}_phases"]), f"{k} (middle)", third, 70 * mm)
              for k in ("axial", "coronal", "sagittal") if f"{k}_grey" in planes]
    out.append(Paragraph("Middle slices, phases tinted over the grey values", styles["h2"]))
    out.append(Table([panels], colWidths=[text_w / 3] * len(panels), hAlign="LEFT",
                     style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    vols = np.asarray(objs["volumes_voxels"], np.float64)
    summary = (f"<b>{objs['count']}</b> objects of at least {objs['min_voxels']} voxels, {objs['touching_edge']} "
               "touching the volume's edge (cut by it).")
    block: list = [Paragraph("Objects", styles["h2"]), Paragraph(summary, styles["body"])]
    if vols.size:
        diam = np.asarray(objs["equivalent_diameters_voxels"], np.float64)
        summary = (f"Volume {fmt(vols.min())} to {fmt(vols.max())} voxels (median {fmt(float(np.median(vols)))}); "
                   f"equivalent diameter median {fmt(float(np.median(diam)))} voxels.")
        top = max(diam.max(), 1.0)
        edges_d = np.linspace(0, top * 1.05, min(40, max(5, vols.size)) + 1)
        block += [Paragraph(summary, styles["body"]),
                  Histogram(np.histogram(diam, edges_d)[0], edges_d, text_w / 2, 45 * mm,
                            "equivalent diameter (voxels of the level)", y_label="objects (log scale)")]
    out.append(KeepTogether(block))
    return out

