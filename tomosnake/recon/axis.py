"""Rotation axis from opposite projections: the projection at theta + 180 degrees is the mirror image
of the one at theta about the axis.

Every position here is an absolute column of the images handed in (0 = their first column).

For each reference projection ``a`` the projection at ``theta_a + 180`` is estimated from the frames
at hand, measured ones or mirrored ones (the mirror of frame ``i`` is the projection at
``theta_i + 180``), interpolated linearly in angle (`opposite_terms`). The mirror operator is
linear, so each reference gives an image pair ``(q, r)`` that does not depend on the axis ``c``,
with ``mirror_c(q) = r`` for consistent data (`pair_images`). 360-degree scans give a pair for any
reference; a 180-degree scan gives one at its seam (first projection against the last one and
the mirror of the second), which suffices when the pair holds many detector rows.

`search_axis` minimises the relative mismatch of the pairs (`mismatch`, zero for consistent data at
the true axis) over every axis whose overlap of mirrored and measured columns is at least
`MIN_OVERLAP_FRACTION` of the width (the axis may be anywhere: half acquisition), coarse to fine
on column-binned images, then to sub-pixel with a parabola. Written here because no library
of the field offers it: algotom's ``find_center_360`` only ranks a window near one edge and
picks wrong candidates on noise-free data (issue 14), TomoPy's ``find_center_pc`` assumes the
axis near the middle, and both need whole sinograms.
"""

from __future__ import annotations

import math

import numpy as np

MIN_OVERLAP_FRACTION = 1 / 16  # least overlap of a projection and its mirrored opposite, of the width
COARSE_COLS = 256  # columns of the coarsest level of the search
LEVEL_FACTOR = 4  # binning factor between levels
MAX_MOVES = 8  # recentring moves of a refinement grid whose minimum is on its edge
MAX_GAP_STEPS = 2.5  # an opposite angle must be this many median angular steps from frames on both sides

Term = tuple[int, bool, float]  # (frame, mirrored, weight)


def _span_step(theta: np.ndarray) -> float:
    d = np.diff(np.sort(np.mod(theta, 360.0)))
    d = d[d > 1e-9]
    if d.size == 0:
        raise ValueError("rotation angles must not all be equal")
    return float(np.median(d))


def opposite_terms(theta_deg: np.ndarray, a: int, step: float | None = None) -> list[Term] | None:
    """How to estimate the projection at ``theta[a] + 180`` from the frames: weighted measured
    and mirrored frames, or None when no frames lie close enough on both sides."""
    theta = np.mod(np.asarray(theta_deg, dtype=np.float64), 360.0)
    step = _span_step(theta) if step is None else step
    n = len(theta)
    ang = np.concatenate([theta, np.mod(theta + 180.0, 360.0)])
    frame = np.concatenate([np.arange(n), np.arange(n)])
    mirrored = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
    keep = ~(mirrored & (frame == a))  # the reference's own mirror sits exactly at the target
    ang, frame, mirrored = ang[keep], frame[keep], mirrored[keep]
    target = (theta[a] + 180.0) % 360.0
    below = np.mod(target - ang, 360.0)  # distance going down to each entry
    above = np.mod(ang - target, 360.0)
    tol = 1e-3 * step
    near = below < tol
    near |= above > 360.0 - tol
    if near.any():
        i = int(np.flatnonzero(near)[0])
        return [(int(frame[i]), bool(mirrored[i]), 1.0)]
    lo, hi = int(np.argmin(below)), int(np.argmin(above))
    d_lo, d_hi = float(below[lo]), float(above[hi])
    if max(d_lo, d_hi) > MAX_GAP_STEPS * step:
        return None
    w_lo = d_hi / (d_lo + d_hi)
    return [(int(frame[lo]), bool(mirrored[lo]), w_lo), (int(frame[hi]), bool(mirrored[hi]), 1.0 - w_lo)]


def choose_references(theta_deg: np.ndarray, n_refs: int) -> list[tuple[int, list[Term]]]:
    """Up to ``n_refs`` reference frames, each with its `opposite_terms`: spread evenly over the first
    half turn (pairs (a, b) and (b, a) hold the same information), plus the frames at the ends of the
    range (the seam of a 180-degree scan). Costs O(n) per candidate, not per frame."""
    theta = np.asarray(theta_deg, dtype=np.float64)
    step = _span_step(theta)
    order = np.argsort(np.mod(theta - theta.min(), 360.0), kind="stable")
    rel = np.mod(theta[order] - theta[order[0]], 360.0)
    half = int(np.searchsorted(rel, 180.0 - step / 2))  # frames in the first half turn
    spread = order[np.unique(np.linspace(0, max(half, 1) - 1, n_refs).round().astype(int))]
    candidates = dict.fromkeys([*(int(a) for a in spread), int(order[0]), int(order[-1])])
    refs = []
    for a in candidates:
        terms = opposite_terms(theta, a, step)
        if terms is not None and not all(mirrored for _, mirrored, _ in terms):  # only mirrored: no information
            refs.append((a, terms))
    if not refs:
        raise ValueError("no projection has its opposite (180 degrees later) among the angles; "
                         "an automatic centre needs a scan over 180 or 360 degrees")
    return refs[:n_refs]


def frames_needed(refs: list[tuple[int, list[Term]]]) -> list[int]:
    """Every frame a set of references reads, sorted."""
    return sorted({a for a, _ in refs} | {i for _, terms in refs for i, _, _ in terms})


def pair_images(frames: dict[int, np.ndarray], refs: list[tuple[int, list[Term]]]) -> tuple[np.ndarray, np.ndarray]:
    """Stacks ``(q, r)`` of shape (n_refs, rows, cols) with ``mirror_c(q) = r`` at the true axis ``c``."""
    qs, rs = [], []
    for a, terms in refs:
        q = np.array(frames[a], dtype=np.float32)
        r = np.zeros_like(q)
        for i, mirrored, w in terms:
            if mirrored:  # mirror(q) = w mirror(p_i) + ...  <=>  mirror(q - w p_i) = ...
                q -= np.float32(w) * frames[i]
            else:
                r += np.float32(w) * frames[i]
        qs.append(q)
        rs.append(r)
    return np.stack(qs), np.stack(rs)


def mismatch(q: np.ndarray, r: np.ndarray, center: float, min_overlap: int) -> float:
    """Relative squared difference of ``r`` and ``q`` mirrored about column ``center`` (linear
    interpolation), over the columns where both exist; inf below ``min_overlap`` such columns."""
    n = q.shape[-1]
    two_c = 2.0 * center
    k = math.floor(two_c + 1e-9)
    w = np.float32(max(0.0, two_c - k))  # the same fraction for every column: mirror(u) = k - u + w
    u0, u1 = max(0, math.ceil(two_c - (n - 1) - 1e-9)), min(n - 1, k)
    if u1 - u0 + 1 < max(2, min_overlap):
        return math.inf
    a, b = k - u1, k - u0 + 1  # q columns mirrored onto u1 .. u0 (and, when w > 0, a + 1 .. b + 1 <= n)
    mirrored = q[..., a:b][..., ::-1]
    if w > 0:
        mirrored = mirrored * (1 - w) + q[..., a + 1:b + 1][..., ::-1] * w
    seen = r[..., u0:u1 + 1]
    denom = float(np.sum(seen * seen) + np.sum(mirrored * mirrored))
    if not denom > 0:
        return math.inf
    return float(np.sum((seen - mirrored) ** 2)) / denom


def _bin_columns(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return a
    n = a.shape[-1] // f
    return a[..., :n * f].reshape(*a.shape[:-1], n, f).mean(axis=-1)


def _levels(n_cols: int) -> list[int]:
    f = max(1, math.ceil(n_cols / COARSE_COLS))
    out = [f]
    while f > 1:
        f = max(1, math.ceil(f / LEVEL_FACTOR))
        out.append(f)
    return out


def search_axis(q: np.ndarray, r: np.ndarray, bounds: tuple[float, float] | None = None) -> float:
    """The axis (absolute column) minimising `mismatch`, to sub-pixel precision.

    ``bounds`` limits the candidates (columns, inclusive); by default every axis with enough overlap.
    Candidates at each level are 0.5 binned pixels apart, so that all of them interpolate with the
    same weights (otherwise the smoothing of noise by interpolation ripples the score).
    """
    n = q.shape[-1]
    min_overlap = max(4, math.ceil(MIN_OVERLAP_FRACTION * n))
    lo_c, hi_c = bounds if bounds is not None else ((min_overlap - 1) / 2, (2 * (n - 1) - min_overlap + 1) / 2)
    best, prev_f = 0.0, 0
    for f in _levels(n):
        qb, rb = _bin_columns(q, f), _bin_columns(r, f)
        off = (f - 1) / 2  # binned column b is centred on full column b*f + off
        overlap = max(2, math.ceil(min_overlap / f))
        if not prev_f:
            grid: np.ndarray = np.arange(math.ceil(2 * (lo_c - off) / f), math.floor(2 * (hi_c - off) / f) + 1) / 2
            scores = np.array([mismatch(qb, rb, c, overlap) for c in grid])
            if not np.isfinite(scores).any():
                raise ValueError("no axis position gives enough overlap of opposite projections")
            i = int(np.argmin(scores))
        else:
            half = 2 * (math.ceil(prev_f / f) + 1)  # samples each side: the previous level's bin and one more
            grid = round(2 * (best - off) / f) / 2 + 0.5 * np.arange(-half, half + 1)
            for _ in range(MAX_MOVES):
                scores = np.array([mismatch(qb, rb, c, overlap) for c in grid])
                i = int(np.argmin(scores))
                if 0 < i < len(grid) - 1 or not np.isfinite(scores[i]):
                    break
                grid = grid + (grid[i] - grid[half])  # minimum on the edge: recentre on it
        best, prev_f = grid[i] * f + off, f
    # sub-pixel: a parabola through the lowest full-resolution sample and its neighbours
    if 0 < i < len(grid) - 1 and np.all(np.isfinite(scores[i - 1:i + 2])):
        s0, s1, s2 = scores[i - 1:i + 2]
        curvature = s0 - 2 * s1 + s2
        if curvature > 0:
            best += 0.5 * float(np.clip(0.5 * (s0 - s2) / curvature, -1.0, 1.0))
    return float(best)
