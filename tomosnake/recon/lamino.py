"""Laminography on the CPU: filtered backprojection along tilted rays, slab by slab.

Geometry (TomocuPy's linerec kernel, in `tomosnake.phantom`'s slice orientation): a point
(x, y, z) of the sample, z along the rotation axis, x = col - (N-1)/2, y = (N-1)/2 - row of an
N x N output slice and z = i - (height-1)/2 for output slice i, projects at angle theta to

    u = c + x cos(theta) + y sin(theta)
    v = v_c + z cos(a) - w sin(a),      w = x sin(theta) - y cos(theta),

c the rotation axis (column), v_c = (n_rows-1)/2 the detector's middle row, a the laminography
angle (0 < a < 90 degrees).  Rays run along u x v = (sin(theta) cos(a), -cos(theta) cos(a), sin(a)).

Method: each projection is filtered row by row with the ramp of `gridrec.filter_response`
(rows are independent, so any window of rows filters alike), then every voxel takes the
bilinear interpolation of its projection (u, v) from every angle (`scipy.ndimage.map_coordinates`)
and the sum is scaled by pi cos(a) / n_proj: the ramp along u and the ray density cancel to
1/cos(a) per plane of the 3D spectrum, each seen twice over a full turn.  Cost: O(N^2 * height
* n_proj) interpolations, direct (TomocuPy's fourierrec is O(N^3 log N)); memory: the slab's
row window, its filtered copy and the slab itself.  Frequencies inside the cone of half angle a
around z are never measured (laminography's missing cone), so flat features blur along z.

A slab of output slices i0..i1 needs the detector rows `row_window` gives: v over its voxels,
|w| <= R (the grid's corner radius, or the circular mask's), plus one row for interpolation.
The volume does not depend on how it is split into slabs, nor on the threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tomosnake.config import ReconConfig, StripeRemoval
from tomosnake.recon import gridrec, steps
from tomosnake.recon.chain import stripe_passes
from tomosnake.recon.stripe import remove_stripes

# Points per map_coordinates call: bounds each thread's coordinate arrays to ~20 MB.
POINTS_PER_CALL = 1 << 20
# Rounding margin (pixels) of the row window: its bounds and the voxels' v are computed differently.
WINDOW_EPS = 1e-6


@dataclass(frozen=True)
class Geometry:
    """A laminography scan's geometry as the reconstruction sees it (see the module docstring)."""

    angle_deg: float
    n_rows: int  # detector rows (preprocessed)
    n_cols: int  # detector columns; also the output width N
    height: int  # output slices
    center: float  # rotation axis, detector column
    mask_radius: float | None = None  # circular mask radius (px) when one is applied

    @property
    def v_center(self) -> float:
        return (self.n_rows - 1) / 2

    def z(self, i: np.ndarray | int) -> np.ndarray:
        """Height of output slice(s) ``i`` above the detector's middle row."""
        return np.asarray(i, dtype=np.float64) - (self.height - 1) / 2

    def with_(self, **changes) -> Geometry:
        return replace(self, **changes)


def default_height(n_rows: int, angle_deg: float) -> int:
    """TomocuPy's reconstruction height: detector rows / cos(angle), rounded up to an even number."""
    return math.ceil(n_rows / math.cos(math.radians(angle_deg)) / 2) * 2


def geometry(cfg: ReconConfig, n_rows: int, n_cols: int, center: float) -> Geometry:
    """The geometry of a scan of n_rows x n_cols preprocessed pixels under ``cfg.lamino``."""
    lam = cfg.lamino
    height = lam.height if lam.height is not None else default_height(n_rows, lam.angle)
    radius = cfg.circ_mask.ratio * n_cols / 2 if cfg.circ_mask.enabled else None
    return Geometry(lam.angle, n_rows, n_cols, height, float(center), radius)


def lateral_radius(geom: Geometry, theta_deg: np.ndarray) -> float:
    """Largest |w| = |x sin(theta) - y cos(theta)| over the reconstructed voxels and the scan's angles.

    Without a mask the grid's corners give it exactly: h (|sin| + |cos|), h the half width. With the
    circular mask (radius R, voxels with r < R kept) it is bounded by the largest kept voxel radius.
    """
    h = (geom.n_cols - 1) / 2
    if geom.mask_radius is None:
        th = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
        return float(h * np.max(np.abs(np.sin(th)) + np.abs(np.cos(th))))
    ax = np.unique(np.abs(np.arange(geom.n_cols) - h))  # |x| and |y| values of the grid, increasing
    room = geom.mask_radius**2 - ax**2  # for each |y|: x^2 must stay below this
    k = np.searchsorted(ax**2, room, side="left") - 1  # the largest |x| with x^2 < room
    ok = k >= 0
    return float(np.sqrt(np.max(ax[ok] ** 2 + ax[k[ok]] ** 2))) if ok.any() else 0.0


def row_window(geom: Geometry, theta_deg: np.ndarray, i0: int, i1: int) -> tuple[int, int]:
    """Detector rows [r0, r1) that output slices [i0, i1) read: every voxel's v and the row above it."""
    a = math.radians(geom.angle_deg)
    r = lateral_radius(geom, theta_deg)
    lo = geom.v_center + float(geom.z(i0)) * math.cos(a) - r * math.sin(a)
    hi = geom.v_center + float(geom.z(i1 - 1)) * math.cos(a) + r * math.sin(a)
    r0 = min(max(0, math.floor(lo - WINDOW_EPS)), geom.n_rows)
    r1 = max(min(geom.n_rows, math.floor(hi + WINDOW_EPS) + 2), r0)
    return r0, r1


def filter_rows(proj: np.ndarray, filter_name: str, npad: int, pad_mode: steps.PadMode,
                filter_par: Sequence[float] | None = None) -> np.ndarray:
    """Pad the columns and ramp-filter each detector row of (n_proj, rows, cols): (n_proj, rows, cols + 2 npad).

    One detector row at a time (a batch of n_proj lines), so a row filters to the same bits
    whichever window it is read in.
    """
    import scipy.fft  # lazy: see tomosnake/__init__.py
    data = steps.pad_columns(np.asarray(proj, dtype=np.float32), npad, pad_mode)
    n_rows, width = data.shape[1:]
    g = gridrec.fft_length(2 * width)  # zero-padded to twice the width: no circular wrap-around
    filt = gridrec.filter_response(filter_name, g, filter_par)[: g // 2 + 1].astype(np.float32)
    out = np.empty_like(data)
    for r in range(n_rows):
        spec = scipy.fft.rfft(data[:, r, :], n=g, axis=-1)
        spec *= filt
        out[:, r, :] = scipy.fft.irfft(spec, n=g, axis=-1)[:, :width]
    return out


def backproject(filtered: np.ndarray, row0: int, theta_deg: np.ndarray, geom: Geometry, i0: int, i1: int,
                npad: int = 0, threads: int = 1) -> np.ndarray:
    """Output slices [i0, i1) (float32, (i1-i0, N, N)) from ``filtered`` = rows [row0, row0 + rows) of the
    filtered projections, padded by ``npad`` columns each side.  Voxels project outside the window read 0."""
    from scipy import ndimage  # lazy: see tomosnake/__init__.py
    n = geom.n_cols
    th = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
    if filtered.shape[0] != th.size:
        raise ValueError(f"{filtered.shape[0]} projections for {th.size} angles")
    a = math.radians(geom.angle_deg)
    sa, ca = math.sin(a), math.cos(a)
    h = (n - 1) / 2
    x = (np.arange(n) - h)[None, :]
    y = (h - np.arange(n))[:, None]
    zc = geom.z(np.arange(i0, i1)) * ca  # (slices,)
    out = np.zeros((i1 - i0, n, n), dtype=np.float32)
    per_call = max(1, POINTS_PER_CALL // (n * n))
    groups = np.array_split(np.arange(i1 - i0), max(1, min(threads, i1 - i0)))

    def run(idx: np.ndarray) -> None:
        for b0 in range(0, idx.size, per_call):
            sl = idx[b0:b0 + per_call]
            acc = out[sl[0]:sl[-1] + 1]
            for t, theta in enumerate(th):
                c, s = math.cos(theta), math.sin(theta)
                u = geom.center + npad + (x * c + y * s)  # (N, N)
                vmid = geom.v_center - (x * s - y * c) * sa  # (N, N), the same whatever the slab
                # v - row0 is exact (an integer taken from a larger float), so windows give the same weights.
                v = (vmid[None] + zc[sl][:, None, None]) - row0
                coords = np.stack([v, np.broadcast_to(u, v.shape)])
                acc += ndimage.map_coordinates(filtered[t], coords, order=1, mode="constant", cval=0.0,
                                               prefilter=False, output=np.float32)

    if len(groups) == 1:
        run(groups[0])
    else:
        with ThreadPoolExecutor(len(groups)) as pool:
            list(pool.map(run, groups))
    out *= np.float32(math.pi * ca / th.size)  # full turn, evenly sampled: weight 2 pi / n, halved (two views)
    return out


def reconstruct_slab(window: np.ndarray, row0: int, theta_deg: np.ndarray, cfg: ReconConfig, geom: Geometry,
                     i0: int, i1: int, log_applied: bool, threads: int,
                     pre_stripe: StripeRemoval | None = None) -> np.ndarray:
    """Output slices [i0, i1) from detector rows [row0, row0 + rows) of the preprocessed stack.

    ``window`` is (n_proj, rows, n_cols), flat/dark-normalised transmission or already -log when
    ``log_applied``; it should hold `row_window`'s rows. Steps as in `chain.reconstruct_block`:
    -log, excluded projections, padding, sinogram stripes (``pre_stripe`` is ``preprocess.stripe``),
    filter, backprojection, rings, mask.
    """
    data = np.asarray(window, dtype=np.float32)
    theta = np.asarray(theta_deg, dtype=np.float64)
    logged = cfg.minus_log is True or (cfg.minus_log == "auto" and not log_applied)
    if logged:
        data = steps.minus_log(data)
    data, theta = steps.exclude_projections(data, theta, cfg.excluded_proj)
    npad = steps.pad_amount(geom.n_cols, cfg.pad.npad) if cfg.pad.enabled else 0
    for stripe in stripe_passes(cfg, pre_stripe) if data.shape[1] else ():
        if data is window:
            data = data.copy()
        data = remove_stripes(data, stripe.function, stripe.kwargs, logged=logged or log_applied, threads=threads)
    filtered = filter_rows(data, cfg.filter_name, npad, cfg.pad.mode, cfg.filter_par)
    rec = backproject(filtered, row0, theta, geom, i0, i1, npad, threads)
    return steps.post_process(rec, cfg)


def slab_bytes(n_proj: int, rows: int, slices: int, n_cols: int, cfg: ReconConfig, threads: int,
               stripes: bool = False) -> int:
    """Peak working memory of `reconstruct_slab` (bytes): the window as read (float32), its -log (and, with
    ``stripes``, a stripe-removed) copy, the padded filtered copy, the output slab and its ring-removal copy,
    the previous slab in the output's dtype (`tomosnake.stages.recon_chunk` writes it meanwhile), each
    thread's coordinates."""
    npad = steps.pad_amount(n_cols, cfg.pad.npad) if cfg.pad.enabled else 0
    width = n_cols + 2 * npad
    window = 4 * n_proj * rows * ((3 if stripes else 2) * n_cols + 2 * width)
    fft = 16 * n_proj * gridrec.fft_length(2 * width)
    written = np.dtype(cfg.convert.output_dtype).itemsize
    out = (4 * (2 if cfg.ring_removal.enabled else 1) + written) * slices * n_cols**2
    points = min(slices, max(1, POINTS_PER_CALL // n_cols**2)) * n_cols**2
    per_thread = 36 * points + 24 * n_cols**2
    return int(window + fft + out + min(threads, slices) * per_thread)
