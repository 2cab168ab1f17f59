"""Centre of rotation: an automatic estimate, and a "try" series of one-slice reconstructions.

Every centre here is an absolute column of the images handed in (0 = their first column), never
an offset from the middle: a series labelled relative to the wrong origin silently shifts the
chosen centre (tomocupy #76). The plan hands in preprocessed (cropped) detector columns; with
half acquisition the reconstruction's axis is elsewhere (`tomosnake.recon.steps.center_after_360`).
Data must be -log (attenuation): a search run before -log gives wrong centres (tomopy #475).

* From a scan (the plan, `center_from_scan`): opposite projections, `tomosnake.recon.axis`.
  HDF5 chunks at beamlines are whole frames, so any row of a projection costs the whole frame:
  a few pairs of frames (at most ``2 * pairs + 2`` projections, 2 flats, 2 darks, each a band of at
  most `MAX_FRAME_PIXELS` pixels) are read whatever the scan's size, and every row of them is used.
  Works for 180 and 360-degree scans with the axis anywhere (half acquisition included).
* From sinograms in memory (`estimate_center`): 180-degree scans by Vo's method,
  `algotom.prep.calculation.find_center_vo` (N. T. Vo et al., Opt. Express 22, 19078 (2014)): the
  sinogram joined with its mirrored copy, the centre with least Fourier energy in the double wedge
  that a consistent sinogram leaves empty. 360-degree scans by opposite projections, as above.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomosnake.io.atomic import atomic_path
from tomosnake.recon.axis import choose_references, frames_needed, pair_images, search_axis

if TYPE_CHECKING:
    from tomosnake.io.stitched_scan import Scan

MAX_VO_ROWS = 512  # projections kept for Vo's search (1800 x 2560 px: 23 s with all rows, 3 s with 450)
MAX_360_PAIRS = 512  # opposite pairs of an in-memory 360-degree sinogram compared
MAX_FRAME_PIXELS = 4 << 20  # pixels of each frame read by `center_from_scan`: a band of rows at mid height
REFERENCE_FRAMES = 2  # flats and darks averaged by `center_from_scan`
MAX_BANDS = 16  # `center_from_scan` averages the rows it reads into at most this many bands
THUMB_PX = 512  # contact-sheet thumbnails at most this many pixels a side
MIN_ANGLES, MIN_COLUMNS = 8, 16  # the smallest sinogram the automatic search takes
VO_SEARCH_FRACTION = 1 / 8  # Vo's search covers the middle +- this fraction of the width


@dataclass(frozen=True)
class CenterEstimate:
    """An automatic centre and how it was found (for the run report)."""

    center: float  # absolute detector column
    method: str


def _prepare(sino: np.ndarray, theta_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Average rows of a 3-D block, sort by angle, clean non-finite values; returns (sino, theta from 0, span)."""
    sino = np.asarray(sino, dtype=np.float32)
    if sino.ndim == 3:  # (n_proj, n_rows, n_cols): a sum of sinograms is a sinogram with the same axis
        sino = sino.mean(axis=1)
    theta = np.asarray(theta_deg, dtype=np.float64)
    if sino.ndim != 2 or theta.shape != (sino.shape[0],):
        raise ValueError(f"sinogram of shape {sino.shape} does not match {theta.shape[0]} angles")
    if sino.shape[0] < MIN_ANGLES or sino.shape[1] < MIN_COLUMNS:
        raise ValueError(f"sinogram of shape {sino.shape} is too small for a centre search")
    order = np.argsort(theta, kind="stable")
    theta = theta[order] - theta[order[0]]
    sino = np.where(np.isfinite(sino[order]), sino[order], 0.0).astype(np.float32)  # as TomoPy remove_nan after -log
    step = float(np.median(np.diff(theta)))
    if step <= 0:
        raise ValueError("rotation angles must not all be equal")
    return sino, theta, float(theta[-1] + step)


def estimate_center(sino: np.ndarray, theta_deg: np.ndarray, ncore: int = 1) -> CenterEstimate:
    """Centre of rotation of -log sinogram(s) ``(n_proj, n_cols)`` or ``(n_proj, n_rows, n_cols)``, in pixels."""
    sino, theta, span = _prepare(sino, theta_deg)
    step = span / len(theta)
    if span >= 360 - 1.5 * step:
        keep = theta < 360 - step / 2
        return _center_360(sino[keep], theta[keep])
    if span >= 180 - 1.5 * step:
        return _center_vo(sino[theta < 180 - step / 2], ncore)
    raise ValueError(f"the angles span {span:.1f} degrees; an automatic centre needs 180 or 360")


def find_center(sino: np.ndarray, theta_deg: np.ndarray, ncore: int = 1) -> float:
    """The automatic centre (absolute detector column) of -log sinogram(s); see `estimate_center`."""
    return estimate_center(sino, theta_deg, ncore).center


def _center_vo(sino_180: np.ndarray, ncore: int) -> CenterEstimate:
    from algotom.prep.calculation import find_center_vo  # heavy import, only here

    n_cols = sino_180.shape[1]
    keep = math.ceil(sino_180.shape[0] / MAX_VO_ROWS)
    radius = max(8, round(n_cols * VO_SEARCH_FRACTION))
    middle = (n_cols - 1) / 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        center = float(find_center_vo(sino_180[::keep], start=middle - radius, stop=middle + radius, ncore=ncore))
    if any("out of the searching range" in str(w.message) for w in caught):
        raise ValueError(f"no centre within {radius} px of the detector middle ({middle}); give recon.center "
                         "or try a range of centres")
    return CenterEstimate(center, f"Vo 2014 Fourier double-wedge metric (algotom find_center_vo), "
                                  f"180 deg, every {keep} projection(s), search {middle:.1f}+-{radius} px")


def _center_360(sino: np.ndarray, theta: np.ndarray) -> CenterEstimate:
    refs = choose_references(theta, MAX_360_PAIRS)
    q, r = pair_images({i: sino[i:i + 1] for i in frames_needed(refs)}, refs)
    return CenterEstimate(search_axis(q, r), f"opposite projections (tomosnake.recon.axis), {len(refs)} pairs, "
                                             "coarse to fine over every axis position")


def center_from_scan(scan: Scan, crop: tuple[int, int, int, int], pairs: int = 4) -> CenterEstimate:
    """The rotation axis of a raw scan in columns ``crop[2]:crop[3]`` (rows ``crop[0]:crop[1]``) of the
    detector, counted from ``crop[2]``, from ``pairs`` opposite-projection pairs; reads a few frames only."""
    theta = np.asarray(scan.info.theta_deg, dtype=np.float64)
    refs = choose_references(theta, pairs)
    r0, r1, c0, c1 = crop
    n_rows = min(r1 - r0, max(1, MAX_FRAME_PIXELS // max(1, scan.info.n_cols)))
    a = (r0 + r1) // 2 - n_rows // 2
    dark = scan.darks(a, a + n_rows, max_frames=REFERENCE_FRAMES).mean(axis=0)[:, c0:c1]
    denom = scan.flats(a, a + n_rows, max_frames=REFERENCE_FRAMES).mean(axis=0)[:, c0:c1]
    denom -= dark
    np.maximum(denom, 1e-6, out=denom)
    bands = np.linspace(0, n_rows, min(MAX_BANDS, n_rows) + 1).round().astype(int)
    frames = {}
    for i in frames_needed(refs):
        proj = scan.projections(i, i + 1, a, a + n_rows)[0][:, c0:c1]
        proj -= dark
        proj /= denom
        i0 = scan.i0(i, i + 1)
        if i0 is not None:
            proj /= np.float32(i0[0])
        np.clip(proj, 1e-6, None, out=proj)
        att = -np.log(proj)
        frames[i] = np.add.reduceat(att, bands[:-1], axis=0) / np.diff(bands)[:, None]
        del proj, att
    q, r = pair_images(frames, refs)
    span = float(np.ptp(theta))
    return CenterEstimate(search_axis(q, r),
                          f"opposite projections (tomosnake.recon.axis): {len(refs)} pair(s) from "
                          f"{len(frames)} projections of the {span + _step(theta):.0f}-degree scan, rows "
                          f"{a}-{a + n_rows - 1} in {len(bands) - 1} bands, {REFERENCE_FRAMES} flats and darks")


def _step(theta: np.ndarray) -> float:
    d = np.diff(np.sort(theta))
    d = d[d > 0]
    return float(np.median(d)) if d.size else 0.0


def centers_around(center: float, width: float, step: float) -> np.ndarray:
    """Absolute centres ``center - width .. center + width`` (inclusive) every ``step`` pixels."""
    if step <= 0 or width < 0:
        raise ValueError("centre search needs step > 0 and width >= 0")
    n = int(math.floor(width / step + 1e-9))
    return center + step * np.arange(-n, n + 1)


def image_name(center: float) -> str:
    """File name of the trial slice for an absolute centre, sortable by value."""
    return f"center_{center:08.2f}.tiff"


@dataclass(frozen=True)
class Series:
    """What a trial series varies: how its images are named, labelled and titled, and its metadata key."""

    key: str = "center"
    name: Callable[[float], str] = image_name
    label: str = "centre {:.2f} px"
    heading: str = "Centre of rotation trial (absolute detector columns)"
    unit: str = "absolute detector column"


CENTER_SERIES = Series()
LAMINO_SERIES = Series("lamino_angle", lambda a: f"lamino_{a:06.2f}.tiff", "tilt {:.2f}°",
                       "Laminography angle trial (degrees, TomocuPy's convention)", "degree")


def try_centers(sino: np.ndarray, theta_deg: np.ndarray, centers: Sequence[float] | np.ndarray,
                recon: Callable[[np.ndarray, np.ndarray, float], np.ndarray], out_dir: str | Path,
                title: str = "", series: Series = CENTER_SERIES) -> list[Path]:
    """Reconstruct one slice per absolute value (a centre, or a laminography angle with ``series``):
    float32 TIFFs named by value, then a PDF contact sheet.

    ``recon(sino, theta_deg, value)`` returns one 2-D slice; ``sino`` may be the detector rows it needs.
    Returns the TIFF paths in the order of ``centers`` followed by ``contact_sheet.pdf``.
    """
    import tifffile

    centers = np.asarray(centers, dtype=np.float64).ravel()
    if centers.size == 0 or not np.all(np.isfinite(centers)) or np.any(centers < 0):
        raise ValueError(f"{series.key} values must be a non-empty list of finite, non-negative numbers")
    names = [series.name(c) for c in centers]
    if len(set(names)) != len(names):
        raise ValueError(f"{series.key} values closer than 0.01 would share an image name")
    sino = np.asarray(sino, dtype=np.float32)
    out_dir = Path(out_dir)
    thumbs, paths = [], []
    for c, name in zip(centers, names, strict=True):
        img = np.asarray(recon(sino, np.asarray(theta_deg), float(c)), dtype=np.float32)
        if img.ndim != 2:
            raise ValueError(f"the reconstruction returned shape {img.shape}, one 2-D slice was expected")
        path = out_dir / name
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, img, metadata={series.key: float(c), "unit": series.unit})
        thumbs.append(_thumbnail(img))
        paths.append(path)
    pdf = out_dir / "contact_sheet.pdf"
    with atomic_path(pdf) as tmp:
        _contact_sheet(tmp, thumbs, centers, title, series)
    return [*paths, pdf]


def _thumbnail(img: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """Block-mean downsampled copy, at most ``size`` pixels a side, so a long series fits in memory."""
    f = math.ceil(max(img.shape) / size)
    h, w = img.shape[0] // f, img.shape[1] // f
    return img[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3))


def _contact_sheet(path: Path, images: list[np.ndarray], centers: np.ndarray, title: str, series: Series) -> None:
    """A PDF grid of the slices, one grey scale for all, each labelled with its absolute value."""
    from PIL import Image
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    lo, hi = np.percentile(np.stack(images), [0.5, 99.5])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    page_w, page_h = landscape(A4)
    margin, label_h, head_h = 24.0, 14.0, 30.0
    n_x = min(4, len(images))
    n_y = min(3, math.ceil(len(images) / n_x))
    cell_w = (page_w - 2 * margin) / n_x
    cell_h = (page_h - 2 * margin - head_h) / n_y
    side = min(cell_w, cell_h - label_h) - 6
    pdf = canvas.Canvas(str(path), pagesize=(page_w, page_h))
    per_page = n_x * n_y
    for k, (img, c) in enumerate(zip(images, centers, strict=True)):
        slot = k % per_page
        if slot == 0:
            if k:
                pdf.showPage()
            pdf.setFont("Helvetica-Bold", 12)
            heading = series.heading
            pdf.drawString(margin, page_h - margin - 12, f"{heading}{': ' + title if title else ''}")
        col, row = slot % n_x, slot // n_x
        x = margin + col * cell_w + (cell_w - side) / 2
        y = page_h - margin - head_h - (row + 1) * cell_h + label_h
        grey = np.clip((img - lo) * scale, 0, 255).astype(np.uint8)
        pdf.drawImage(ImageReader(Image.fromarray(grey)), x, y, side, side)
        pdf.setFont("Helvetica", 10)
        pdf.drawCentredString(x + side / 2, y - label_h + 3, series.label.format(c))
    pdf.save()
