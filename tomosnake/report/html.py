"""What Snakemake's own HTML report (``snakemake --report report.html``) shows of a scan beside its PDF: the
previews as PNG images and the volume's statistics as an HTML table. The rule report writes them and marks
them with ``report()``; the captions are in the workflow's ``report/`` folder."""

from __future__ import annotations

from html import escape
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from tomosnake import provenance
from tomosnake.io.atomic import atomic_dir, write_text
from tomosnake.report.figures import reduce_for_display, window
from tomosnake.report.previews import Previews
from tomosnake.stages.combine import read_histogram

# Image names (the files' stems, which the report lists) and what each shows.
IMAGES = {
    "1_raw_projection": "raw projection",
    "2_corrected_projection": "corrected projection",
    "3_raw_sinogram": "raw sinogram",
    "4_corrected_sinogram": "corrected sinogram",
    "5_axial_slice": "axial slice through the middle of the volume",
    "6_coronal_slice": "coronal slice",
    "7_sagittal_slice": "sagittal slice",
}


def grey(arr: np.ndarray) -> Image.Image:
    """An 8-bit image of ``arr``, grey levels over its 0.5-99.5 percentiles (as the PDF's panels)."""
    arr = reduce_for_display(arr)
    lo, hi = window(arr)
    scaled = (np.nan_to_num(arr, nan=lo) - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def write_images(previews: Previews, axial: np.ndarray, coronal: np.ndarray, sagittal: np.ndarray,
                 out_dir: str | Path) -> None:
    """The previews and three orthogonal slices as PNGs in ``out_dir`` (replaced whole)."""
    arrays = [previews.images["raw_proj"], previews.images["corr_proj"], previews.images["raw_sino"],
              previews.images["corr_sino"], axial, coronal, sagittal]
    with atomic_dir(out_dir) as tmp:
        for name, arr in zip(IMAGES, arrays, strict=True):
            grey(arr).save(tmp / f"{name}.png")


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _conversion(conv: dict, dtype: np.dtype) -> str:
    if conv.get("enabled") and np.issubdtype(dtype, np.integer):
        return (f"{dtype}: reconstructed values {_fmt(conv['min'])} to {_fmt(conv['max'])} mapped linearly to "
                f"0-{np.iinfo(dtype).max}, clipped (range mode {conv['mode']})")
    if dtype == np.float16:
        return "a plain cast of the reconstructed values to float16 (no range)"
    return "none: the reconstructed float32 values"


def write_stats(volume_path: str | Path, out_path: str | Path) -> None:
    """The volume's statistics (`combine`'s, in the volume file) as a small self-contained HTML table."""
    with h5py.File(volume_path, "r") as f:
        data = f["exchange/data"]
        shape, dtype = data.shape, data.dtype
        counts, edges, st = read_histogram(f)
        conv = provenance.read(f)["conversion_range"]
    rows = [
        ("Shape (z, y, x)", " x ".join(map(str, shape))),
        ("Stored type", str(dtype)),
        ("Voxels", f"{int(st['count']):,}"),
        ("Minimum (stored values, all voxels)", _fmt(st["min"])),
        ("Maximum (stored values, all voxels)", _fmt(st["max"])),
        ("Non-finite voxels", f"{int(st['nan']):,}"),
        ("Mean (sampled voxels)", _fmt(st["mean"])),
        ("Standard deviation (sampled voxels)", _fmt(st["std"])),
        ("Voxels sampled (regular grid) for mean, std, histogram", f"{int(st['sampled']):,}"),
        ("Histogram", f"{len(counts)} bins from {_fmt(edges[0])} to {_fmt(edges[-1])}; "
                      f"{int(st['underflow']):,} below, {int(st['overflow']):,} above"),
        ("Conversion", _conversion(conv, dtype)),
    ]
    body = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    html = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{escape(Path(volume_path).name)}</title>"
            "<style>body{font-family:sans-serif;font-size:14px}th{text-align:left;padding-right:1em}"
            "td,th{border-bottom:1px solid #ddd;padding:3px}</style></head>\n<body>"
            f"<h3>Volume statistics: {escape(Path(volume_path).name)}</h3>\n<table>\n{body}\n</table></body></html>\n")
    write_text(out_path, html)
