"""The sinogram and slice steps of the reconstruction chain, each a plain array function.

Layouts: projection blocks are (n_proj, n_slices, n_cols) as read from /exchange/data;
slices are (n_slices, N, N).  Geometry and centres follow `tomosnake.phantom`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from tomosnake.corrections.minuslog import minus_log as corrections_minus_log

if TYPE_CHECKING:
    from tomosnake.config import ReconConfig

PadMode = Literal["edge", "constant", "reflect"]  # the detector padding modes (config recon.pad.mode)


def minus_log(proj: np.ndarray) -> np.ndarray:
    """-log of transmission as a new float32 array (`corrections.minuslog.minus_log` on a copy)."""
    return corrections_minus_log(np.array(proj, dtype=np.float32))


# ------------------------------------------------------------------ 360 -> 180
def _half_acquisition_layout(old_center: float, width: int) -> tuple[int, int]:
    """(overlap, offset of the first half's columns) of the stitched sinogram.

    As the GUI does (TomoPy ``sino_360_to_180`` semantics): with the axis C right of the
    middle (C > width//2) the overlap is 2*int(width - C) and the first half keeps its
    columns; otherwise the overlap is 2*int(C) and the first half moves right by
    width - overlap.
    """
    if not 0 < old_center < width - 1:
        raise ValueError(f"sino_360_to_180.old_center {old_center} is outside the detector (0..{width - 1})")
    if old_center > width // 2:
        overlap = 2 * int(width - old_center)
        return overlap, 0
    overlap = 2 * int(old_center)
    return overlap, width - overlap


def width_after_360(old_center: float, width: int) -> int:
    """Width of the stitched 180-degree sinogram."""
    overlap, _ = _half_acquisition_layout(old_center, width)
    return 2 * width - overlap


def center_after_360(old_center: float, width: int) -> float:
    """Rotation axis, in columns of the stitched sinogram."""
    _, offset = _half_acquisition_layout(old_center, width)
    return old_center + offset


def sino_360_to_180(proj: np.ndarray, theta_deg: np.ndarray, old_center: float) -> tuple[np.ndarray, np.ndarray]:
    """Stitch a half-acquisition 360-degree scan into a 180-degree one of width `width_after_360`.

    Projection k + n/2 (angle theta_k + 180) is the mirror image of projection k about the
    axis ``old_center``; it is mirrored about the exact (sub-pixel) axis with linear
    interpolation and joined to projection k with linear weights across the overlap, so
    the stitched sinogram has its axis at `center_after_360`.  The first half's angles are
    kept; an odd last projection is dropped.
    """
    n_proj, n_rows, width = proj.shape
    n = n_proj // 2
    overlap, offset = _half_acquisition_layout(old_center, width)
    width2 = 2 * width - overlap
    new_center = old_center + offset
    j = np.arange(width2, dtype=np.float64)
    u1 = j - offset  # column of the first half
    u2 = old_center - (j - new_center)  # mirrored column of the second half
    valid1 = (u1 >= 0) & (u1 <= width - 1)
    valid2 = (u2 >= 0) & (u2 <= width - 1)
    both = valid1 & valid2
    w1 = valid1.astype(np.float64)
    if both.any():
        lo, hi = np.flatnonzero(both)[[0, -1]]
        ramp = (j[lo:hi + 1] - lo + 0.5) / (hi - lo + 1)
        w1[lo:hi + 1] = ramp if offset > 0 else ramp[::-1]  # rises towards the first half's side
    w2 = 1.0 - w1
    u2c = np.clip(u2, 0, width - 1)
    i0 = np.minimum(np.floor(u2c).astype(np.int64), width - 2)
    frac = (u2c - i0).astype(np.float32)
    second = proj[n:2 * n]
    mirrored = second[..., i0] * (1 - frac) + second[..., i0 + 1] * frac
    first = np.zeros((n, n_rows, width2), dtype=np.float32)
    cols = np.flatnonzero(valid1)
    first[..., cols] = proj[:n][..., cols - offset]
    out = first * w1.astype(np.float32) + mirrored * w2.astype(np.float32)
    return out.astype(np.float32, copy=False), np.asarray(theta_deg[:n], dtype=np.float64)


# ------------------------------------------------------------- excluded, padding
def exclude_projections(proj: np.ndarray, theta_deg: np.ndarray,
                        ranges: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Drop the half-open index ranges [from, to) of the stack as it is at this step."""
    if not ranges:
        return proj, theta_deg
    keep = np.ones(proj.shape[0], dtype=bool)
    for a, b in ranges:
        keep[max(int(a), 0):max(int(b), 0)] = False
    if not keep.any():
        raise ValueError("excluded_proj removes every projection")
    return proj[keep], np.asarray(theta_deg)[keep]


def pad_amount(width: int, npad: str | int) -> int:
    """Columns added on each side: ``width // 4`` for 'auto' (the GUI's choice)."""
    return width // 4 if npad == "auto" else int(npad)


def pad_columns(proj: np.ndarray, npad: int, mode: PadMode) -> np.ndarray:
    """Pad the detector axis by ``npad`` on each side (numpy modes 'edge', 'constant', 'reflect')."""
    if npad <= 0:
        return proj
    return np.pad(proj, ((0, 0), (0, 0), (npad, npad)), mode=mode)


# ----------------------------------------------------------------- ring removal
def _median_along_rows(a: np.ndarray, rad: int) -> np.ndarray:
    """Median over 2*rad+1 neighbours along axis 1, reflecting at the ends of each row.

    Rows are padded and laid end to end so that scipy's fast 1D median runs once
    (20x faster than its 2D filter with a (1, k) footprint).
    """
    from scipy import ndimage  # lazy: see tomosnake/__init__.py
    if rad < 1:
        return a.copy()
    padded = np.pad(a, ((0, 0), (rad, rad)), mode="reflect")
    med = ndimage.median_filter(padded.ravel(), size=2 * rad + 1, mode="reflect").reshape(padded.shape)
    return med[:, rad:rad + a.shape[1]]


RING_R_SCALE = 2  # radial samples per pixel in the polar image (TomoPy: 1, nearest neighbour)


def remove_ring(rec: np.ndarray, thresh: float | None = None, theta_min: float | None = None,
                rwidth: int | None = None, thresh_max: float = 300.0, thresh_min: float = -100.0) -> np.ndarray:
    """Ring removal in the reconstructed slices, TomoPy ``remove_ring`` semantics.

    Each slice goes to polar coordinates about its centre (radius up to the nearest edge,
    one angular sample per pixel of circumference) with values clipped to
    [thresh_min, thresh_max]; the difference to a radial median (half-width
    2*rwidth+1 pixels in the outer third, 2/3 and 1/3 of that further in) is kept where
    |difference| <= thresh, averaged along the angle (half-width theta_min degrees' worth of
    samples in the outer third, likewise scaled), mapped back and subtracted.  Defaults as
    TomoPy: thresh 300, theta_min 30, rwidth 30.  Unlike TomoPy's nearest-neighbour
    transforms, the polar image is sampled twice per pixel radially with cubic splines and
    mapped back with linear interpolation, which removes narrow rings more completely.
    """
    from scipy import ndimage  # lazy: see tomosnake/__init__.py
    thresh = 300.0 if thresh is None else float(thresh)
    theta_min = 30 if theta_min is None else int(theta_min)
    rwidth = 30 if rwidth is None else int(rwidth)
    n_slices, ny, nx = rec.shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    max_r = int(min(cx + 1, cy + 1, nx - cx, ny - cy))
    n_ang = int(round(2 * np.pi * max_r))
    n_r = RING_R_SCALE * max_r
    ang = (np.arange(n_ang) + 0.5) * 2 * np.pi / n_ang
    r = np.arange(n_r) / RING_R_SCALE
    py = cy + r[None, :] * np.sin(ang)[:, None]
    px = cx + r[None, :] * np.cos(ang)[:, None]
    m_rad = 2 * rwidth + 1
    m_azi = int(np.ceil(n_ang / 360.0)) * theta_min
    thirds = [(0, n_r // 3), (n_r // 3, 2 * n_r // 3), (2 * n_r // 3, n_r)]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    rr = np.hypot(yy - cy, xx - cx) * RING_R_SCALE
    inside = rr <= n_r - 1
    aa = (np.mod(np.arctan2(yy - cy, xx - cx), 2 * np.pi) * n_ang / (2 * np.pi) - 0.5)[inside]
    rr = rr[inside]
    out = rec.astype(np.float32, copy=True)
    for s in range(n_slices):
        polar = ndimage.map_coordinates(rec[s].astype(np.float64), [py, px], order=3, mode="nearest")
        np.clip(polar, thresh_min, thresh_max, out=polar)
        ring = np.empty_like(polar)
        for k, (a, b) in enumerate(thirds):
            rad = (k + 1) * m_rad * RING_R_SCALE // 3
            lo, hi = max(0, a - rad), min(n_r, b + rad)
            diff = polar[:, a:b] - _median_along_rows(polar[:, lo:hi], rad)[:, a - lo:b - lo]
            diff[np.abs(diff) > thresh] = 0.0
            ring[:, a:b] = ndimage.uniform_filter1d(diff, 2 * ((k + 1) * m_azi // 3) + 1, axis=0, mode="wrap")
        back = ndimage.map_coordinates(ring, [aa, rr], order=1, mode="grid-wrap")
        out[s][inside] -= back.astype(np.float32)
    return out


RING_AGREE = 0.5  # a column stripe of a 180-degree scan makes a half ring: half the sectors see it


def remove_rings_consistent(rec: np.ndarray, size: int = 5) -> np.ndarray:
    """Ring removal with `tomosnake.recon.stripe.stripe_profile` on each slice in polar coordinates.

    In the polar image (angle x radius, one sample per pixel of radius and of circumference) a
    ring is a stripe: the same offset at one radius over every angle.  The offsets found
    alike in at least half of 8 angular sectors (a defective detector column of a 180-degree
    scan makes a half ring) are subtracted, interpolated linearly in radius; radii where the
    sectors disagree (the object's own edges) are left exactly unchanged.
    """
    from scipy import ndimage  # lazy: see tomosnake/__init__.py
    from tomosnake.recon.stripe import stripe_profile

    n_slices, ny, nx = rec.shape
    cy, cx = (ny - 1) / 2, (nx - 1) / 2
    n_r = int(min(cx, cy)) + 1
    n_ang = int(round(2 * np.pi * n_r))
    ang = (np.arange(n_ang) + 0.5) * 2 * np.pi / n_ang
    r = np.arange(n_r, dtype=np.float64)
    py = cy + r[None, :] * np.sin(ang)[:, None]
    px = cx + r[None, :] * np.cos(ang)[:, None]
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    rr = np.hypot(yy - cy, xx - cx)
    inside = rr <= n_r - 1
    out = rec.astype(np.float32, copy=True)
    for s in range(n_slices):
        polar = ndimage.map_coordinates(rec[s].astype(np.float64), [py, px], order=1, mode="nearest")
        ring = stripe_profile(polar[:, None, :], size, agree=RING_AGREE)[0]
        out[s][inside] -= np.interp(rr[inside], r, ring).astype(np.float32)
    return out


# ------------------------------------------------------------------ circle mask
def circ_mask(rec: np.ndarray, ratio: float, val: float) -> np.ndarray:
    """Set pixels outside the centred disc of radius ratio * N/2 to ``val`` (TomoPy ``circ_mask``)."""
    n_slices, ny, nx = rec.shape
    y = np.arange(ny) - (ny - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    r2 = (ratio * min(nx, ny) / 2) ** 2
    outside = (y[:, None] ** 2 + x[None, :] ** 2) >= r2
    rec[:, outside] = val
    return rec


def post_process(rec: np.ndarray, cfg: ReconConfig) -> np.ndarray:
    """The steps on reconstructed slices: ring removal, then the circular mask."""
    if cfg.ring_removal.enabled:
        rr = cfg.ring_removal
        if rr.resolved_method == "consistent":
            rec = remove_rings_consistent(rec)
        else:
            rec = remove_ring(rec, thresh=rr.thresh, theta_min=rr.theta_min, rwidth=rr.rwidth)
    if cfg.circ_mask.enabled:
        rec = circ_mask(rec, cfg.circ_mask.ratio, cfg.circ_mask.val)
    return rec
