"""Projection stitching: scans of one sample at several lateral positions joined into wide projections.

Each scan covers part of the width, with overlap to its neighbour (seed paper §2.3). The column
offset of each scan starts from its motor position and is refined by searching a window (±20 px
by default) for the offset with the least mean squared difference in the overlap; overlapping
columns are blended with weights proportional to each pixel's distance from its own image's
edge, normalised to sum to 1, so the seams fade linearly.

The work is split so that no scan is ever read whole: `refine_offsets` runs once on a few
projections of each scan (the plan stage), then `stitch_block` joins any block of projections ×
rows with those offsets (the preprocess chunks). Offsets are whole pixels, as in the seed paper's
search; the data should be flat-field corrected per scan first, so that intensities agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def motor_offsets(positions: Sequence[float], pixel_size: float) -> list[float]:
    """First-guess column offsets from lateral motor positions (same unit as ``pixel_size``), first scan at 0.

    Positions must increase towards higher detector columns; negate them if the stage moves the other way.
    """
    if pixel_size <= 0:
        raise ValueError("pixel_size must be > 0")
    return [(p - positions[0]) / pixel_size for p in positions]


def refine_offsets(images: Sequence[np.ndarray], guess: Sequence[float], window: int = 20,
                   min_overlap: int = 8) -> tuple[int, ...]:
    """Whole-pixel column offsets of scans ordered left to right, the first at 0.

    ``images[i]`` is a few flat-field-corrected projections of scan ``i``, shape ``(..., n_cols_i)``
    with the same leading shape for all scans (same angles and rows). Each neighbour's offset is
    searched within ``guess ± window`` for the least mean squared difference over the overlap.
    Raises ValueError when the best offset lies on the window's edge (the motor guess is too far off).
    """
    if len(images) != len(guess) or len(images) < 2:
        raise ValueError("need at least two scans and one guessed offset per scan")
    lead = images[0].shape[:-1]
    if any(img.shape[:-1] != lead for img in images):
        raise ValueError("all scans must give the same projections and rows to compare")
    offsets = [0]
    for i in range(len(images) - 1):
        a = np.asarray(images[i], dtype=np.float64)
        b = np.asarray(images[i + 1], dtype=np.float64)
        wa, wb = a.shape[-1], b.shape[-1]
        centre = int(round(guess[i + 1] - guess[i]))
        lo, hi = centre - window, centre + window
        trials = range(max(lo, 1), min(hi, wa - min_overlap) + 1)
        if not trials:
            raise ValueError(f"scans {i} and {i + 1}: no offset in {lo}..{hi} leaves {min_overlap} px of overlap")
        cost = []
        for d in trials:
            n = min(wa - d, wb)
            cost.append(np.mean((a[..., d:d + n] - b[..., :n]) ** 2))
        best = trials[int(np.argmin(cost))]
        if best in (lo, hi):
            raise ValueError(f"scans {i} and {i + 1}: best offset {best} px is on the edge of the search window "
                             f"{lo}..{hi}; check the motor positions or widen the window")
        offsets.append(offsets[-1] + best)
    return tuple(offsets)


def stitched_width(widths: Sequence[int], offsets: Sequence[int]) -> int:
    """Width of the stitched projection; every column must be covered by some scan."""
    if len(widths) != len(offsets) or min(offsets) != 0:
        raise ValueError("need one offset per scan, the smallest 0")
    width = max(o + w for o, w in zip(offsets, widths, strict=True))
    covered = np.zeros(width, dtype=bool)
    for o, w in zip(offsets, widths, strict=True):
        covered[o:o + w] = True
    if not covered.all():
        raise ValueError(f"offsets {list(offsets)} leave columns {np.flatnonzero(~covered)[[0, -1]].tolist()} "
                         "covered by no scan")
    return width


def edge_weights(n_cols: int) -> np.ndarray:
    """Blending weight of each column: the distance of its centre from the nearer edge of the image."""
    x = np.arange(n_cols, dtype=np.float32) + 0.5
    return np.minimum(x, n_cols - x)


def stitch_block(blocks: Sequence[np.ndarray], offsets: Sequence[int]) -> np.ndarray:
    """Join the same block (projections × rows) of each scan into wide projections, float32.

    ``blocks[i]`` has shape ``(..., n_cols_i)``; scan ``i`` starts at stitched column ``offsets[i]``.
    Where scans overlap each pixel is weighted by its distance from its own image's edge, the
    weights normalised to 1.
    """
    if len(blocks) != len(offsets):
        raise ValueError("need one offset per block")
    lead = blocks[0].shape[:-1]
    if any(b.shape[:-1] != lead for b in blocks):
        raise ValueError("blocks of all scans must cover the same projections and rows")
    width = stitched_width([b.shape[-1] for b in blocks], offsets)
    total = np.zeros((*lead, width), dtype=np.float32)
    norm = np.zeros(width, dtype=np.float32)
    for block, off in zip(blocks, offsets, strict=True):
        w = edge_weights(block.shape[-1])
        total[..., off:off + block.shape[-1]] += block * w
        norm[off:off + block.shape[-1]] += w
    total /= norm
    return total
