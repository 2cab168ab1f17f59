"""Filtered backprojection by Fourier gridding: the default, pip-only backend ("gridrec").

The backprojection of a filtered sinogram is, by the Fourier slice theorem, an adjoint
non-uniform FFT: every projection's 1D spectrum lies on a line through the origin of the
image's 2D spectrum, and the image is the sum over those polar samples,

    f(x, y) = sum_theta w_theta sum_k  P_theta(k) H(k) exp(2 pi i k/G (x cos theta + y sin theta)) / G,

with P the detector-axis FFT (length G, origin at the rotation axis), H the filter and
w_theta the angular quadrature weights.  The polar-to-Cartesian spreading with its kernel
(exponential of semicircle) is FINUFFT's (``spreadinterponly``: what TomoPy's gridrec does by hand
with a PSWF kernel; the library is well kept, vectorised and faster than a hand-written loop); the
grid's FFT and the deapodisation (by the kernel's transform, sampled from FINUFFT itself) are done
here, because the threads must share one grid: FINUFFT's own multithreaded spreading is not
reproducible bit for bit (upstream wontfix), and a grid per thread would not fit the budget of a
wide scan (~3.5 GB each at the ovine bone's 16606 px). So the fine grid is cut into strips of
`STRIP_ROWS` rows and each strip into tiles of `TILE_COLS` columns; a task spreads one strip, tile by
tile, each by a single-threaded plan into a tile grid of its own (with margins), added to the slice
pair's grid. Even strips go first, then odd ones (`strip_phases`): strips of one phase never meet, so no
lock is needed and every grid cell gets its sums in an order fixed by the data. Two real slices travel as one
complex signal (real and imaginary parts), as in gridrec.

Geometry is that of `tomosnake.phantom`: detector column u sees s = u - center, pixel
(row, col) of an n x n slice sits at x = col - (n-1)/2, y = row - (n-1)/2 from the axis.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from tomosnake.config import FILTER_PARS

FILTERS = ("none", "ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "butterworth")
# Requested relative accuracy of the gridding.  Measured at 1024 px / 1201 angles against
# eps 1e-7: rms difference 4e-5 and max 5e-4 of the image range, far below the
# discretisation error (~2e-2), and 2x faster than eps 1e-4 with upsampling 2.
NUFFT_EPS = 1e-3
UPSAMPLING = 1.25  # fine grid / image side: 2.6x less grid than 2.0, for a kernel 5 points wide instead of 4
STRIP_ROWS = 32  # fine-grid rows spread by one task
# Fine-grid columns of a strip spread by one FINUFFT call. FINUFFT spreads each call into a fresh subgrid as
# large as the call's grid: a tile's, (STRIP_ROWS + 2 margins) x (TILE_COLS + 2 margins) complex64 (0.7 MB),
# stays under the jobs' 1 MiB mmap threshold (`resources.JOB_ENV`) and is reused from the heap, where a whole
# strip's (1.6 MB at 4096 px, 6.6 MB at the bone scan's 16606) was mapped and page-faulted anew by every call:
# twice the cost of the spreading itself.
TILE_COLS = 2048
BUILD_POINTS = 1 << 16  # points per step of the gridding's build: float64 temporaries of 512 KiB
MAX_MARGIN = 6  # rows a strip's grid reaches beyond its own (kernel half-width + 2; 5 at NUFFT_EPS)
ANGLE_BLOCK = 64  # angles per FFT call: fixed, so the batches (and the result) do not depend on the threads
FFT_BLOCK = 64  # fine-grid rows or columns per FFT call (fixed as well)
STRIPS_PER_THREAD = 4  # fewer, and a pair's threads wait on its densest strips: pairs run side by side


def fft_length(width: int) -> int:
    """Detector FFT length: the next fast size >= width (the caller pads for accuracy)."""
    import scipy.fft  # lazy: see tomosnake/__init__.py

    return scipy.fft.next_fast_len(int(width))


def filter_response(name: str, n: int, par: Sequence[float] | None = None) -> np.ndarray:
    """Real filter of length ``n`` in FFT order: ramp times window (TomoPy's filter names).

    The ramp is the FFT of the band-limited spatial ramp kernel (Kak & Slaney eq. 3.61:
    h(0) = 1/4, h(odd m) = -1/(pi m)^2, 0 otherwise), which keeps the right zero-frequency
    level, unlike |k|/n sampled in frequency.  Windows reach zero at the Nyquist frequency
    (parzen (1-2|f|)^3, butterworth order 8 with cut-off 0.5, hann, hamming, cosine, and
    shepp's sinc(f)); "none" is plain backprojection, as in TomoPy.

    ``par`` is TomoPy's ``filter_par`` for the windows of `FILTER_PARS`, with TomoPy's formulas
    (f in cycles per pixel): hann 0.5 (1 + cos(2 pi f / c)), hamming 0.54 + 0.46 cos(2 pi f / c),
    parzen (1 - |f| / c)^3, butterworth 1 / (1 + (|f| / c)^(2 order)). Without it, hann and
    hamming take c = 1 (hann reaches zero at Nyquist; TomoPy's default c = 0.5 puts the zero at
    f = 0.25 and rises back to 1 at Nyquist), parzen c = 0.5 and butterworth [0.5, 8] (TomoPy's).
    """
    if name not in FILTERS:
        raise ValueError(f"unknown filter_name {name!r}; choose one of {', '.join(FILTERS)}")
    if par is not None and len(par) != FILTER_PARS.get(name, 0):
        raise ValueError(f"filter_par: filter {name!r} takes {FILTER_PARS.get(name, 0)} values, not {len(par)}")
    f = np.fft.fftfreq(n)  # cycles per pixel, in [-0.5, 0.5)
    if name == "none":
        return np.ones(n)
    m = np.fft.fftfreq(n, 1.0 / n)  # integer lags in FFT order
    h = np.zeros(n)
    h[m == 0] = 0.25
    odd = (m % 2) == 1
    h[odd] = -1.0 / (np.pi * m[odd]) ** 2
    ramp = np.real(np.fft.fft(h))
    a = np.abs(f)
    c = par[0] if par is not None else {"hann": 1.0, "hamming": 1.0}.get(name, 0.5)
    window = {
        "ramlak": lambda: np.ones(n),
        "shepp": lambda: np.sinc(f),
        "cosine": lambda: np.cos(np.pi * f),
        "hann": lambda: 0.5 * (1.0 + np.cos(2 * np.pi * f / c)),
        "hamming": lambda: 0.54 + 0.46 * np.cos(2 * np.pi * f / c),
        "parzen": lambda: (1.0 - a / c) ** 3,
        "butterworth": lambda: 1.0 / (1.0 + (a / c) ** (2 * (par[1] if par is not None else 8.0))),
    }[name]()
    return ramp * window


def angle_weights(theta_rad: np.ndarray) -> np.ndarray:
    """Quadrature weights (summing to pi) for angles in any order or range.

    Angles are taken modulo pi and each gets half the gap to its neighbours, so uneven
    steps, missing ranges and full 360-degree scans (every direction seen twice) are all
    weighted right.
    """
    a = np.mod(np.asarray(theta_rad, dtype=np.float64), np.pi)
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + np.pi]]))
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w


def _spectral_row(center: float, g: int, filt: np.ndarray) -> np.ndarray:
    """The detector-frequency factor of every angle: filter, 1/G and the shift that puts the rotation axis
    at the origin (the quadrature weight is per angle, the pixel-centre shift is applied to the grid)."""
    k = np.fft.fftfreq(g)  # cycles per pixel
    row = np.exp(2j * np.pi * k * center) * (filt / g)
    if g % 2 == 0:
        row[g // 2] = 0.0  # the Nyquist bin has no sign; dropping it keeps images real
    return row.astype(np.complex64)


@dataclass(frozen=True)
class Gridding:
    """Everything about a slice's gridding that depends on the angles, not on the data: each tile's points
    (a tile: `tile` columns of a strip; their index in the angle x frequency spectrum and their coordinates
    in the tile's grid),
    the detector-frequency factor, the quadrature weights and the deapodisation. Shared read-only by
    every worker; built once per job (`gridding`)."""

    n_out: int
    g: int
    nf: int  # fine grid: nf x nf
    margin: int  # rows (columns) a strip's (tile's) grid extends beyond its own
    tile: int  # fine-grid columns of a tile
    n_tiles: int  # tiles of a strip
    bounds: np.ndarray  # tile t of strip s holds points bounds[k]:bounds[k + 1] of idx/px/py, k = s * n_tiles + t
    phases: list[list[int]]  # `strip_phases`
    idx: np.ndarray  # flat (angle, frequency) index of each point, tiles in turn
    px: np.ndarray  # point's column coordinate in its tile's grid, float32
    py: np.ndarray  # point's row coordinate in its strip's grid, float32
    row: np.ndarray  # `_spectral_row`
    weights: np.ndarray  # angle quadrature weights, float32
    shift: np.ndarray  # fine grid modulation: the half-pixel offset of even-sized images
    deconv: np.ndarray  # per output mode (and axis): sign and deapodisation

    @property
    def strip_rows(self) -> int:
        return STRIP_ROWS + 2 * self.margin

    @property
    def tile_cols(self) -> int:
        return self.tile + 2 * self.margin

    @property
    def wrap(self) -> float:
        """Factor of a value spread past an edge of the (periodic) fine grid: exp(2 pi i delta), -1 for the
        half-pixel offset of even images (the modulated grid is anti-periodic), 1 for odd ones."""
        return -1.0 if self.n_out % 2 == 0 else 1.0

    def plan(self) -> Any:
        """A single-threaded spreading plan onto one tile's grid (no sorting: a tile's points come in
        angle-major order, each angle's along its line, which spreads as fast as FINUFFT's own order)."""
        import finufft

        return finufft.Plan(1, (self.strip_rows, self.tile_cols), eps=NUFFT_EPS, isign=1, dtype="complex64",
                            nthreads=1, spreadinterponly=1, upsampfac=UPSAMPLING, spread_sort=0)


def fine_grid(n_out: int) -> int:
    """Side of the fine grid for ``n_out`` x ``n_out`` modes: fast, and whole strips (at least 4)."""
    import scipy.fft

    return STRIP_ROWS * scipy.fft.next_fast_len(max(math.ceil(UPSAMPLING * n_out / STRIP_ROWS), 4))


def strip_phases(points: np.ndarray) -> list[list[int]]:
    """Strips spread at once, in turn: even ones, odd ones, and the last alone if it is even (it meets the
    first across the grid's edge). Strips of one phase never meet. Within a phase the densest go first (by
    ``points``, each strip's count), so that no thread is left with a dense one at the end."""
    last = len(points) - 1
    phases = [range(0, last + 1, 2), range(1, last + 1, 2)] if last % 2 else \
        [range(0, last, 2), range(1, last + 1, 2), range(last, last + 1)]
    return [sorted(phase, key=lambda i: -int(points[i])) for phase in phases]


def _kernel(nf: int) -> np.ndarray:
    """The spreading kernel sampled on the fine grid (one axis, centred at nf / 2), from FINUFFT itself."""
    import finufft

    rows = STRIP_ROWS + 2 * MAX_MARGIN
    plan = finufft.Plan(1, (rows, nf), eps=NUFFT_EPS, isign=1, dtype="complex64", nthreads=1, spreadinterponly=1,
                        upsampfac=UPSAMPLING)
    plan.setpts(np.zeros(1, np.float32), np.zeros(1, np.float32))
    spread = plan.execute(np.ones(1, np.complex64)).real.astype(np.float64)
    return spread[rows // 2] / np.sqrt(spread[rows // 2, nf // 2])


def _build(theta: np.ndarray, center: float, g: int, n_out: int, filter_name: str, threads: int,
           filter_par: Sequence[float] | None) -> Gridding:
    n_proj = len(theta)
    nf = fine_grid(n_out)
    kern = _kernel(nf)
    width = int(np.count_nonzero(kern))
    margin = width // 2 + 2
    if STRIP_ROWS <= 2 * margin:
        raise AssertionError("strips narrower than the kernel: strips of one phase would meet")
    omega = 2 * np.pi * np.fft.fftfreq(g)
    cos, sin = np.cos(theta), np.sin(theta)
    n_strips = nf // STRIP_ROWS
    tile = min(TILE_COLS, nf)
    n_tiles = (nf - 1) // tile + 1
    n_keys = n_strips * n_tiles  # a point's key: its strip's and tile's, s * n_tiles + t
    key_type = np.int16 if n_keys <= np.iinfo(np.int16).max else np.int32
    blocks = list(range(0, n_proj, ANGLE_BLOCK))
    per = max(1, BUILD_POINTS // g)  # angles of a step within a block: its temporaries stay under 1 MiB

    def steps(a: int) -> list[tuple[int, int]]:
        b = min(a + ANGLE_BLOCK, n_proj)
        return [(c, min(c + per, b)) for c in range(a, b, per)]

    def on_grid(trig: np.ndarray, a: int, b: int) -> np.ndarray:  # each point's row (sin) or column (cos), float64
        return (trig[a:b, None] * omega[None, :]) * (nf / (2 * np.pi)) + nf / 2

    def key_of(a: int) -> np.ndarray:
        keys = np.empty((min(a + ANGLE_BLOCK, n_proj) - a) * g, dtype=key_type)
        for c, d in steps(a):
            # clipped: a point on an edge (nf / 2 + nf / 2 or a rounding below 0) goes to the tile beside it
            strip = np.clip(on_grid(sin, c, d) // STRIP_ROWS, 0, n_strips - 1)
            col_tile = np.clip(on_grid(cos, c, d) // tile, 0, n_tiles - 1)
            keys[(c - a) * g:(d - a) * g] = (strip * n_tiles + col_tile).ravel()
        return keys

    def count(a: int) -> np.ndarray:
        return np.bincount(block_keys[a // ANGLE_BLOCK], minlength=n_keys)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        block_keys = list(pool.map(key_of, blocks))
        counts = np.array(list(pool.map(count, blocks)), dtype=np.int64).reshape(len(blocks), n_keys)
        bounds = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])
        # where each block's points of each key go: a stable counting sort, the blocks independent, each block's
        # steps in turn
        starts = bounds[:-1] + np.cumsum(counts, axis=0) - counts
        m = n_proj * g
        idx = np.empty(m, dtype=np.int32 if m < 2**31 else np.int64)

        def place(a: int) -> None:
            keys, nxt = block_keys[a // ANGLE_BLOCK], starts[a // ANGLE_BLOCK].copy()
            for c, d in steps(a):
                s = keys[(c - a) * g:(d - a) * g]
                order = np.argsort(s, kind="stable")
                sorted_s = s[order]
                first = np.searchsorted(sorted_s, np.arange(n_keys))
                idx[nxt[sorted_s] + (np.arange(len(s)) - first[sorted_s])] = c * g + order
                nxt += np.bincount(s, minlength=n_keys)

        list(pool.map(place, blocks))
        block_keys.clear()  # 2 bytes a point, no longer needed
        px = np.empty(m, dtype=np.float32)
        py = np.empty(m, dtype=np.float32)
        rows, cols = STRIP_ROWS + 2 * margin, tile + 2 * margin

        def coords(k: int) -> None:  # FINUFFT's coordinate of grid position p in a grid of n: (p - n / 2) 2 pi / n
            s, t = divmod(k, n_tiles)
            a, b = bounds[k], bounds[k + 1]
            ang, freq = np.divmod(idx[a:b], g)
            w = omega[freq] * (nf / (2 * np.pi))
            px[a:b] = (w * cos[ang] + nf / 2 - (t * tile - margin) - cols / 2) * (2 * np.pi / cols)
            py[a:b] = (w * sin[ang] + nf / 2 - (s * STRIP_ROWS - margin) - rows / 2) * (2 * np.pi / rows)

        list(pool.map(coords, range(n_keys)))
    # Even-sized images have pixel centres half a mode off FINUFFT's integer modes: the grid is modulated
    # by exp(i delta x) (what wraps around an edge by exp(2 pi i delta) more, `Gridding.wrap`) and the
    # deapodisation taken at mode + delta.
    delta = n_out // 2 - (n_out - 1) / 2
    x = 2 * np.pi * (np.arange(nf) - nf / 2) / nf
    modes = np.arange(n_out) - n_out // 2
    support = np.flatnonzero(kern)
    kernel_ft = (kern[support] * np.cos((modes[:, None] + delta) * x[support])).sum(axis=1)  # kern is even
    sign = np.where(modes % 2, -1.0, 1.0)  # the fine grid's origin is its middle
    return Gridding(n_out=n_out, g=g, nf=nf, margin=margin, tile=tile, n_tiles=n_tiles, bounds=bounds,
                    phases=strip_phases(np.diff(bounds[::n_tiles])), idx=idx, px=px, py=py,
                    row=_spectral_row(center, g, filter_response(filter_name, g, filter_par)),
                    weights=angle_weights(theta).astype(np.float32),
                    shift=np.exp(1j * delta * x).astype(np.complex64),
                    deconv=(sign / kernel_ft).astype(np.float32))


_cache: dict[tuple, Gridding] = {}
# Buffers of pairs done, for the job's next loads: a fresh 1 GB grid costs its page faults again (glibc
# returns large blocks at once, `resources.JOB_ENV`), as much as transforming it.
_spare: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
_spare_lock = threading.Lock()


def gridding(theta: np.ndarray, center: float, g: int, n_out: int, filter_name: str, threads: int = 1,
             filter_par: Sequence[float] | None = None) -> Gridding:
    """The `Gridding` of these angles and sizes: built once and kept (one at a time) for the job's next loads."""
    from tomosnake.report import timings

    key = (hashlib.sha1(np.ascontiguousarray(theta, dtype=np.float64).tobytes()).hexdigest(), float(center), g, n_out,
           filter_name, None if filter_par is None else tuple(float(p) for p in filter_par))
    if key not in _cache:
        forget()  # before building: two at a time would not fit the budget
        with timings.phase("gridding: points"):
            _cache[key] = _build(np.asarray(theta, dtype=np.float64), center, g, n_out, filter_name, threads,
                                 filter_par)
    return _cache[key]


def forget() -> None:
    """Drop the kept `Gridding` and buffers (the job that used them is over)."""
    _cache.clear()
    _spare.clear()


def parallel_pairs(n_out: int, threads: int) -> int:
    """Slice pairs reconstructed at once by ``threads`` threads: one, unless a pair's strips are too few to keep
    them busy (at least `STRIPS_PER_THREAD` each; a narrow image with many threads)."""
    strips = math.ceil(fine_grid(n_out) / STRIP_ROWS)
    return max(1, min(threads, math.ceil(threads * STRIPS_PER_THREAD / strips)))


def working_bytes(n_proj: int, g: int, n_out: int, threads: int) -> int:
    """Peak bytes of `reconstruct` besides its input and output: the shared `Gridding` (12 bytes a point,
    16 while it is built); each pair in progress's (`parallel_pairs`) spectrum, later its grid transformed
    along x, and fine grid; each thread's tile grid and FINUFFT's subgrid of a tile, gathered values (at most
    a strip's: the densest holds ~3.5x the mean) and FFT blocks."""
    nf = fine_grid(n_out)
    points = n_proj * g
    strip = STRIP_ROWS + 2 * MAX_MARGIN
    grids = 2 * strip * (min(TILE_COLS, nf) + 2 * MAX_MARGIN)
    per_pair = 8 * max(points, nf * n_out) + 8 * nf * nf
    per_thread = 8 * grids + 8 * 4 * points * STRIP_ROWS // nf + 2 * 8 * FFT_BLOCK * nf
    return int(16 * points + parallel_pairs(n_out, threads) * per_pair + threads * per_thread)


def reconstruct(sino: np.ndarray, theta_rad: np.ndarray, center: float, filter_name: str = "shepp",
                threads: int = 1, n_out: int | None = None, fft_len: int | None = None,
                filter_par: Sequence[float] | None = None) -> np.ndarray:
    """Reconstruct ``sino`` (n_proj, n_slices, width) to (n_slices, n_out, n_out) float32.

    ``center`` is the rotation axis in columns of ``sino``; the output grid is centred on it and
    oriented as TomoPy's (see `tomosnake.phantom` for the geometry).
    ``n_out`` defaults to the width; ``fft_len`` (>= width) to `fft_length`; ``filter_par`` is TomoPy's
    (`filter_response`).

    Slice pairs (two real slices as one complex signal, as in gridrec), `parallel_pairs` at a time, the
    threads sharing each: its spectrum in fixed blocks of angles, its spreading strip by strip (each
    strip into a grid of its own by a single-threaded FINUFFT plan, added to the pair's grid), its grid's
    FFT in fixed blocks of rows and columns. No step's arithmetic depends on the thread count, so
    neither does the result, bit for bit (FINUFFT's own multithreaded spreading adds its threads'
    subgrids in a varying order).
    """
    n_proj, n_slices, width = sino.shape
    n_out = width if n_out is None else int(n_out)
    g = fft_length(width) if fft_len is None else int(fft_len)
    if g < width:
        raise ValueError("fft_len must be >= the sinogram width")
    grid_of = gridding(np.asarray(theta_rad, dtype=np.float64), center, g, n_out, filter_name, threads, filter_par)
    out = np.empty((n_slices, n_out, n_out), dtype=np.float32)
    starts = list(range(0, n_slices, 2))
    n_pairs = max(1, min(parallel_pairs(n_out, threads), len(starts)))
    shares = [threads // n_pairs + (i < threads % n_pairs) for i in range(n_pairs)]

    def worker(i: int) -> None:
        with _Pair(grid_of, sino, out, g, shares[i]) as pair:
            for s in starts[i::n_pairs]:
                pair.run(s)

    if n_pairs == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(n_pairs) as pool:
            list(pool.map(worker, range(n_pairs)))
    return out


def _fft_in_place(x: np.ndarray, axis: int, inverse: bool = False) -> None:
    """The FFT of ``x`` along ``axis`` (inverse: scaled by 1/n on the way back, norm "forward"), into ``x``.
    scipy.fft transforms where the data are when it may (``overwrite_x``, no padding) and then nothing is
    copied; an array it returns instead is copied back, so the result never depends on that."""
    import scipy.fft

    y = (scipy.fft.ifft(x, axis=axis, norm="forward", overwrite_x=True, workers=1) if inverse
         else scipy.fft.fft(x, axis=axis, overwrite_x=True, workers=1))
    if y.ctypes.data != x.ctypes.data or y.strides != x.strides:  # another array object over x's data otherwise
        x[...] = y


Slices = tuple[slice, slice]  # (in the fine grid, in a tile grid)


def _pieces(start: int, n: int, size: int, wrap: float) -> list[tuple[Slices, float]]:
    """Where a tile grid's rows (or columns) [start, start + n) of the periodic fine grid of ``size`` land:
    (slices, factor) of each piece, the factor `Gridding.wrap` for a piece past an edge."""
    end = start + n
    inside = max(start, 0), min(end, size)
    pieces = [((slice(*inside), slice(inside[0] - start, inside[1] - start)), 1.0)]
    if start < 0:
        pieces.append(((slice(size + start, size), slice(0, -start)), wrap))
    if end > size:
        pieces.append(((slice(0, end - size), slice(size - start, n)), wrap))
    return pieces


class _Pair:
    """One slice pair at a time into ``out``: its buffers and its share of the threads."""

    def __init__(self, grid_of: Gridding, sino: np.ndarray, out: np.ndarray, g: int, threads: int) -> None:
        n_proj = sino.shape[0]
        nf, n = grid_of.nf, grid_of.n_out
        self.gr, self.sino, self.out, self.g, self.threads = grid_of, sino, out, g, threads
        with _spare_lock:
            kept = next((b for b in _spare if b[0].shape == (n_proj, g) and b[1].shape == (nf, nf)), None)
            if kept is not None:
                _spare.remove(kept)
        if kept is None:
            spec = np.empty((n_proj, g), dtype=np.complex64)
            flat = spec.reshape(-1)  # the grid transformed along x goes where the spectrum was, where it fits
            half = flat[:nf * n].reshape(nf, n) if flat.size >= nf * n else np.empty((nf, n), dtype=np.complex64)
            kept = (spec, np.empty((nf, nf), dtype=np.complex64), half)
        self.spec: np.ndarray = kept[0]
        self.grid: np.ndarray = kept[1]
        self.half: np.ndarray = kept[2]
        self.modes = (np.arange(n) - n // 2) % nf
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def __enter__(self) -> _Pair:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        with _spare_lock:
            _spare.append((self.spec, self.grid, self.half))

    def _each(self, fn: Callable[[int], None], starts: Sequence[int]) -> None:
        if self.pool is None:
            for a in starts:
                fn(a)
        else:
            list(self.pool.map(fn, starts))

    def run(self, s: int) -> None:
        """Slices s and s + 1; the wall seconds of its spreading and of its grid's FFTs go to the job's record
        (the parts of `resources.ReconRates`)."""
        from tomosnake.report import timings

        gr = self.gr
        with timings.phase("gridding: spectrum, spreading"):
            self._each(partial(self._spectrum, s), range(0, self.sino.shape[0], ANGLE_BLOCK))
            self._each(self._clear, range(0, gr.nf, FFT_BLOCK))
            for strips in gr.phases:  # strips of one phase never meet: no lock
                self._each(self._strip, strips)
        with timings.phase("gridding: grid FFTs"):
            self._each(self._along_x, range(0, gr.nf, FFT_BLOCK))
            self._each(partial(self._along_y, s), range(0, gr.n_out, FFT_BLOCK))

    def _scratch(self) -> SimpleNamespace:
        """This thread's buffers, kept for the pair's life: its spreading plan and tile grid, the gathered
        values of the densest tile, and a block of FFT_BLOCK fine-grid rows or columns with the
        block's image modes. Jobs return every freed array of 1 MiB or more to the system (`resources.JOB_ENV`),
        so a temporary per block would cost its page faults each time: more than the block's FFT."""
        local = self.local
        if not hasattr(local, "plan"):
            gr = self.gr
            local.plan = gr.plan()
            local.tile = np.empty((gr.strip_rows, gr.tile_cols), dtype=np.complex64)
            local.values = np.empty(int(np.diff(gr.bounds).max()), dtype=np.complex64)
            local.block = np.empty(FFT_BLOCK * gr.nf, dtype=np.complex64)
            local.modes = np.empty(FFT_BLOCK * gr.n_out, dtype=np.complex64)
        return local  # type: ignore[return-value]

    def _spectrum(self, s: int, a: int) -> None:
        """Angles [a, a + ANGLE_BLOCK): the slice pair's detector spectrum, in place in the pair's spectrum."""
        n_proj, n_slices, width = self.sino.shape
        b = min(a + ANGLE_BLOCK, n_proj)
        f = self.spec[a:b]
        f[:, :width].real = self.sino[a:b, s]
        f[:, :width].imag = self.sino[a:b, s + 1] if s + 1 < n_slices else 0.0
        f[:, width:] = 0.0
        _fft_in_place(f, axis=-1)
        f *= self.gr.row
        f *= self.gr.weights[a:b, None]

    def _clear(self, a: int) -> None:
        self.grid[a:a + FFT_BLOCK] = 0

    def _strip(self, i: int) -> None:
        """Strip i: its tiles in turn (a fixed order), each spread into its tile grid and added to the pair's."""
        gr = self.gr
        rows_pieces = _pieces(i * STRIP_ROWS - gr.margin, gr.strip_rows, gr.nf, gr.wrap)
        for t in range(gr.n_tiles):
            a, b = gr.bounds[i * gr.n_tiles + t], gr.bounds[i * gr.n_tiles + t + 1]
            if a == b:
                continue
            local = self._scratch()
            values = np.take(self.spec.reshape(-1), gr.idx[a:b], out=local.values[:b - a], mode="clip")
            local.plan.setpts(gr.py[a:b], gr.px[a:b])
            part = local.plan.execute(values, out=local.tile)
            for rows, rsign in rows_pieces:
                for cols, csign in _pieces(t * gr.tile - gr.margin, gr.tile_cols, gr.nf, gr.wrap):
                    dst, src = self.grid[rows[0], cols[0]], part[rows[1], cols[1]]
                    if rsign * csign > 0:
                        dst += src
                    else:
                        dst -= src

    def _along_x(self, a: int) -> None:
        gr = self.gr
        rows = min(FFT_BLOCK, gr.nf - a)
        block = np.multiply(self.grid[a:a + rows], gr.shift, out=self._scratch().block[:rows * gr.nf].reshape(rows, -1))
        _fft_in_place(block, axis=1, inverse=True)
        np.take(block, self.modes, axis=1, out=self.half[a:a + rows], mode="clip")

    def _along_y(self, s: int, a: int) -> None:
        gr = self.gr
        cols = min(FFT_BLOCK, gr.n_out - a)
        local = self._scratch()
        block = np.multiply(self.half[:, a:a + cols], gr.shift[:, None],
                            out=local.block[:gr.nf * cols].reshape(-1, cols))
        _fft_in_place(block, axis=0, inverse=True)
        img = np.take(block, self.modes, axis=0, out=local.modes[:gr.n_out * cols].reshape(-1, cols), mode="clip")
        img *= gr.deconv[:, None]
        img *= gr.deconv[None, a:a + cols]
        # FINUFFT's first mode axis runs along +y; image rows run along -y (TomoPy's orientation).
        self.out[s, ::-1, a:a + cols] = img.real
        if s + 1 < self.out.shape[0]:
            self.out[s + 1, ::-1, a:a + cols] = img.imag
