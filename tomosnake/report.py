"""The per-scan PDF report (reportlab): raw, corrected and reconstructed data, parameters, timings."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from tomosnake.atomic import atomic_path
from tomosnake.config import TomoConfig, stage_dict
from tomosnake.plan import Plan, resolve_center
from tomosnake.scan import RawScan


def to_image(arr: np.ndarray) -> Image.Image:
    """An 8-bit greyscale image of ``arr`` stretched between its 1st and 99th percentiles."""
    arr = np.nan_to_num(np.asarray(arr, dtype=np.float32))
    lo, hi = np.percentile(arr, [1, 99])
    scaled = np.clip((arr - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return Image.fromarray((scaled * 255).astype(np.uint8), mode="L")


def _panel(c: Canvas, arr: np.ndarray, x: float, y: float, w: float, h: float, title: str) -> None:
    img = to_image(arr)
    scale = min(w / img.width, h / img.height)
    c.drawImage(ImageReader(img), x, y, img.width * scale, img.height * scale)
    c.setFont("Helvetica", 8)
    c.drawString(x, y + img.height * scale + 2, f"{title}  {arr.shape[1]}x{arr.shape[0]} px")


def _text(c: Canvas, lines: list[str], x: float, y: float, size: int = 8) -> float:
    c.setFont("Courier", size)
    for line in lines:
        if y < 20 * mm:
            c.showPage()
            c.setFont("Courier", size)
            y = A4[1] - 20 * mm
        c.drawString(x, y, line[:110])
        y -= size * 1.3
    return y


def write_report(plan: Plan, cfg: TomoConfig, vds_path: str | Path, volume_path: str | Path,
                 out_path: str | Path) -> None:
    """Write the report PDF for one scan."""
    with RawScan(plan.input, cfg.datasets) as scan:
        mid_row = plan.info["n_rows"] // 2
        raw_proj = scan.projections(0, 1, 0, plan.info["n_rows"])[0]
        raw_sino = scan.projections(0, plan.info["n_proj"], mid_row, mid_row + 1)[:, 0, :]
    with h5py.File(vds_path, "r") as f:
        corr = f["exchange/data"]
        corr_sino = corr[:, corr.shape[1] // 2, :]
    with h5py.File(volume_path, "r") as f:
        vol = f["exchange/data"]
        nz, ny, nx = vol.shape
        axial, coronal, sagittal = vol[nz // 2], vol[:, ny // 2, :], vol[:, :, nx // 2]

    center, center_method = resolve_center(plan, cfg)
    w, h = A4
    with atomic_path(out_path) as tmp:
        c = Canvas(str(tmp), pagesize=A4)
        c.setTitle(f"tomosnake report: {plan.scan}")
        c.setFont("Helvetica-Bold", 14)
        c.drawString(20 * mm, h - 20 * mm, f"Reconstruction report: {plan.scan}")
        c.setFont("Helvetica", 9)
        c.drawString(20 * mm, h - 27 * mm, f"input {plan.input}")
        c.drawString(20 * mm, h - 32 * mm, f"sample {plan.info['sample']}; raw {plan.info['n_proj']} x "
                     f"{plan.info['n_rows']} x {plan.info['n_cols']}; volume {nz} x {ny} x {nx}; "
                     f"k={plan.k}, j={plan.j}; centre {center:.2f} ({center_method})")
        pw, ph = 80 * mm, 55 * mm
        _panel(c, raw_proj, 20 * mm, h - 100 * mm, pw, ph, "raw projection 0")
        _panel(c, raw_sino, 110 * mm, h - 100 * mm, pw, ph, f"raw sinogram, row {mid_row}")
        _panel(c, corr_sino, 20 * mm, h - 170 * mm, pw, ph, "corrected sinogram")
        _panel(c, axial, 110 * mm, h - 170 * mm, pw, ph, f"slice z={nz // 2}")
        _panel(c, coronal, 20 * mm, h - 240 * mm, pw, ph, f"slice y={ny // 2}")
        _panel(c, sagittal, 110 * mm, h - 240 * mm, pw, ph, f"slice x={nx // 2}")
        c.showPage()
        params = {s: stage_dict(cfg, s) for s in ("preprocess", "recon", "output")}
        _text(c, ["Parameters"] + json.dumps(params, indent=1).splitlines(), 20 * mm, h - 20 * mm)
        c.showPage()
        c.save()
