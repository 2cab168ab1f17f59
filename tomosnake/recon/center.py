"""Centre of rotation: an automatic estimate, and a "try" series of one-slice reconstructions.

Every centre here is an absolute detector column of the sinogram handed in (0 = its first
column), never an offset from the middle: a series labelled relative to the wrong origin
silently shifts the chosen centre (tomocupy #76). Sinograms must be -log (attenuation) data:
a search run before -log gives wrong centres (tomopy #475).

Automatic methods, chosen from the angular range:

* 180° scans: Vo's method, `algotom.prep.calculation.find_center_vo` (N. T. Vo et al.,
  Opt. Express 22, 19078 (2014)): the 180° sinogram is joined with its mirrored copy and the
  centre is the one whose Fourier spectrum has least energy in the double wedge that a
  consistent sinogram leaves empty.
* 360° scans, axis anywhere (half acquisition included): `algotom.prep.calculation.find_center_360`
  (N. T. Vo et al., Opt. Express 29, 17849 (2021)), which matches each projection with the
  mirrored one taken 180° later. It is run for the axis in the left and in the right half,
  and the side whose opposite projections agree better is kept (`_mirror_mismatch`); the
  disagreement is then minimised to sub-pixel precision (`_refine_mirror`).

Angles are thinned before the search (`MAX_VO_ROWS`, `MAX_360_ROWS`): the accuracy holds and
a 2560-px detector takes seconds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from algotom.prep.calculation import find_center_360, find_center_vo

from tomosnake.io.atomic import atomic_path

MAX_VO_ROWS = 512  # projections kept for Vo's search (1800 x 2560 px: 23 s with all rows, 3 s with 450)
MAX_360_ROWS = 1024  # projections kept for the 360° search (a divisor of half the count, to keep opposite pairs)
THUMB_PX = 512  # contact-sheet thumbnails at most this many pixels a side
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
    if sino.shape[0] < 8 or sino.shape[1] < 16:
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
        return _center_360(sino[keep], theta[keep], ncore)
    if span >= 180 - 1.5 * step:
        return _center_vo(sino[theta < 180 - step / 2], ncore)
    raise ValueError(f"the angles span {span:.1f} degrees; an automatic centre needs 180 or 360")


def find_center(sino: np.ndarray, theta_deg: np.ndarray, ncore: int = 1) -> float:
    """The automatic centre (absolute detector column) of -log sinogram(s); see `estimate_center`."""
    return estimate_center(sino, theta_deg, ncore).center


def _center_vo(sino_180: np.ndarray, ncore: int) -> CenterEstimate:
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


def _mirror_mismatch(sino: np.ndarray, theta: np.ndarray, center: float) -> float:
    """Relative squared difference between projections and the mirrored ones 180° later about ``center``.

    Written here because algotom returns no such score: it decides the side of the axis and the
    sub-pixel refinement, and is zero for perfectly consistent data at the true centre.
    """
    # The projection 180° after each one in the first half turn, interpolated between the two
    # nearest angles (exact when the sampling has opposite pairs); 360° wraps to the first row.
    first = np.flatnonzero(theta < 180)
    ang = np.append(theta, 360.0)
    rows = np.concatenate([sino, sino[:1]])
    target = theta[first] + 180
    hi_row = np.clip(np.searchsorted(ang, target), 1, len(ang) - 1)
    frac = ((target - ang[hi_row - 1]) / (ang[hi_row] - ang[hi_row - 1]))[:, None]
    opposite = rows[hi_row - 1] * (1 - frac) + rows[hi_row] * frac
    n_cols = sino.shape[1]
    cols = np.arange(n_cols, dtype=np.float64)
    mirror = 2 * center - cols  # column u at theta + 180 sees what column 2c - u saw at theta
    valid = (mirror >= 0) & (mirror <= n_cols - 1)
    if valid.sum() < 4:
        return math.inf
    lo = np.floor(mirror[valid]).astype(int)
    hi = np.minimum(lo + 1, n_cols - 1)
    w = mirror[valid] - lo
    a = sino[first]
    mirrored = a[:, lo] * (1 - w) + a[:, hi] * w
    b = opposite[:, valid]
    denom = float(np.sum(b**2 + mirrored**2))
    return float(np.sum((b - mirrored) ** 2)) / denom if denom > 0 else math.inf


def _center_360(sino: np.ndarray, theta: np.ndarray, ncore: int) -> CenterEstimate:
    half = len(theta) // 2
    keep = max((k for k in range(1, half + 1) if half % k == 0 and len(theta) / k >= MAX_360_ROWS), default=1)
    sino, theta = sino[::keep], theta[::keep]
    n_cols = sino.shape[1]
    win = max(8, n_cols // 20)
    candidates = []
    for side in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            candidates.append(float(find_center_360(sino, win_width=win, side=side, ncore=ncore)[0]))
    scores = [_mirror_mismatch(sino, theta, c) for c in candidates]
    center = _refine_mirror(sino, theta, candidates[int(np.argmin(scores))])
    return CenterEstimate(center, "Vo 2021 360-deg overlap (algotom find_center_360, both sides), "
                                  f"every {keep} projection(s), refined by least squares of opposite projections")


def _refine_mirror(sino: np.ndarray, theta: np.ndarray, coarse: float, max_moves: int = 8) -> float:
    """Sub-pixel minimum of `_mirror_mismatch` near ``coarse``.

    Centres are sampled 0.5 px apart so that every sample interpolates with the same weights
    (otherwise the smoothing of noise by interpolation ripples the score with a 0.5-px period);
    a parabola through the lowest sample and its neighbours gives the vertex.
    """
    grid = coarse + 0.5 * np.arange(-4, 5)
    for _ in range(max_moves):
        scores = np.array([_mirror_mismatch(sino, theta, c) for c in grid])
        best = int(np.argmin(scores))
        if 0 < best < len(grid) - 1:
            break
        grid = grid + (grid[best] - grid[len(grid) // 2])  # minimum on the edge: recentre on it
    else:
        raise ValueError(f"the 360-degree centre search did not settle near {coarse:.1f} px")
    lo, mid, hi = scores[best - 1:best + 2]
    curvature = lo - 2 * mid + hi
    shift = 0.5 * (lo - hi) / curvature if curvature > 0 else 0.0
    return float(grid[best] + 0.5 * np.clip(shift, -1.0, 1.0))


def centers_around(center: float, width: float, step: float) -> np.ndarray:
    """Absolute centres ``center - width .. center + width`` (inclusive) every ``step`` pixels."""
    if step <= 0 or width < 0:
        raise ValueError("centre search needs step > 0 and width >= 0")
    n = int(math.floor(width / step + 1e-9))
    return center + step * np.arange(-n, n + 1)


def image_name(center: float) -> str:
    """File name of the trial slice for an absolute centre, sortable by value."""
    return f"center_{center:08.2f}.tiff"


def try_centers(sino: np.ndarray, theta_deg: np.ndarray, centers: Sequence[float] | np.ndarray,
                recon: Callable[[np.ndarray, np.ndarray, float], np.ndarray], out_dir: str | Path,
                title: str = "") -> list[Path]:
    """Reconstruct one slice per absolute centre: float32 TIFFs named by centre, then a PDF contact sheet.

    ``recon(sino, theta_deg, center)`` returns one 2-D slice. Returns the TIFF paths in the order of
    ``centers`` followed by ``contact_sheet.pdf``.
    """
    import tifffile

    centers = np.asarray(centers, dtype=np.float64).ravel()
    if centers.size == 0 or not np.all(np.isfinite(centers)) or np.any(centers < 0):
        raise ValueError("centres must be a non-empty list of finite, non-negative detector columns")
    names = [image_name(c) for c in centers]
    if len(set(names)) != len(names):
        raise ValueError("centres closer than 0.01 px would share an image name")
    sino = np.asarray(sino, dtype=np.float32)
    out_dir = Path(out_dir)
    thumbs, paths = [], []
    for c, name in zip(centers, names, strict=True):
        img = np.asarray(recon(sino, np.asarray(theta_deg), float(c)), dtype=np.float32)
        if img.ndim != 2:
            raise ValueError(f"the reconstruction returned shape {img.shape}, one 2-D slice was expected")
        path = out_dir / name
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, img, metadata={"center": float(c), "unit": "absolute detector column"})
        thumbs.append(_thumbnail(img))
        paths.append(path)
    pdf = out_dir / "contact_sheet.pdf"
    with atomic_path(pdf) as tmp:
        _contact_sheet(tmp, thumbs, centers, title)
    return [*paths, pdf]


def _thumbnail(img: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """Block-mean downsampled copy, at most ``size`` pixels a side, so a long series fits in memory."""
    f = math.ceil(max(img.shape) / size)
    h, w = img.shape[0] // f, img.shape[1] // f
    return img[:h * f, :w * f].reshape(h, f, w, f).mean(axis=(1, 3))


def _contact_sheet(path: Path, images: list[np.ndarray], centers: np.ndarray, title: str) -> None:
    """A PDF grid of the slices, one grey scale for all, each labelled with its absolute centre."""
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
            heading = "Centre of rotation trial (absolute detector columns)"
            pdf.drawString(margin, page_h - margin - 12, f"{heading}{': ' + title if title else ''}")
        col, row = slot % n_x, slot // n_x
        x = margin + col * cell_w + (cell_w - side) / 2
        y = page_h - margin - head_h - (row + 1) * cell_h + label_h
        grey = np.clip((img - lo) * scale, 0, 255).astype(np.uint8)
        pdf.drawImage(ImageReader(Image.fromarray(grey)), x, y, side, side)
        pdf.setFont("Helvetica", 10)
        pdf.drawCentredString(x + side / 2, y - label_h + 3, f"centre {c:.2f} px")
    pdf.save()
