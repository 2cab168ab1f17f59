"""Paganin phase retrieval (single distance) of a homogeneous object. Units: pixel size and
distance in cm, energy in keV (TomoPy's ``retrieve_phase`` units); f in cycles per cm.

The sample's terms (``delta_beta`` = delta/beta of the refractive index n = 1 - delta + i beta):
each projection is multiplied in Fourier space by the textbook filter (Paganin et al., J. Microsc.
206, 33 (2002))

    H(f) = 1 / (1 + pi * lambda * dist * (delta/beta) * |f|^2),

after which -log gives mu T (mu = 4 pi beta / lambda, T the projected thickness).

``alpha`` (.tori files) keeps TomoPy 1.x's normalised filter

    H(f) = 1 / (1 + lambda * dist * |f|^2 / (4 pi alpha)),

a regularisation, not beta/delta: the same filter needs alpha = beta / (4 pi^2 delta), so
alpha = beta/delta is 4 pi^2 (about 39x) too weak (issue 14; the correction of TomoPy PR #547 is
unmerged). Written on `scipy.fft` because TomoPy is not installable here and is ~4x slower
(performance-targets.md); algotom has no Paganin filter.

Two symbols for |f|^2: ``tomopy`` uses f^2 on the DFT grid, as TomoPy does;
its lattice kernel has an alternating 1/n^2 tail (the symbol has a kink at the
Nyquist frequency), so no finite overlap makes a row tile exact and the step
needs whole projections (rows FULL). ``generalised`` uses sin^2(pi f p)/(pi p)^2
(p the pixel size; the "generalised Paganin method", Paganin et al. 2020,
J. Opt. 22 115607): equal at low frequencies, its kernel is the Green's function
of (1 - a Laplacian) on the pixel lattice, positive and exponentially decaying,
so `reach` rows of overlap make tiles exact to 1e-7 of the data range.

Padding: each block is extended from its own edges (edge mode) by `reach`
pixels on every side, a width fixed by the filter, never by the tile; then up
to a fast FFT length. Without padding the FFT wraps the projection around its
edges, which only the whole projection reproduces (rows FULL).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import FULL, Context, Facts, Needs, Step, register

HC_KEV_CM = 1.239841984e-7  # Planck constant x speed of light, keV cm
KINDS = ("tomopy", "generalised")
TAIL = 1e-7  # kernel mass allowed beyond the overlap
BATCH_BYTES = 128 << 20  # padded projections transformed together
BYTES_PER_PADDED_PIXEL = 12  # padded input, half complex spectrum (+ pocketfft copy), real output


def wavelength_cm(energy_kev: float) -> float:
    return HC_KEV_CM / energy_kev


def alpha_of(delta_beta: float) -> float:
    """TomoPy's alpha that gives the textbook filter of a sample with this delta/beta."""
    return 1 / (4 * math.pi**2 * delta_beta)


def coefficient(pixel_size: float, dist: float, energy: float, alpha: float | None = None,
                delta_beta: float | None = None) -> float:
    """c such that H = 1 / (1 + c |f|^2) with f in cycles per pixel, from delta/beta when given, else alpha."""
    if delta_beta is not None:
        return math.pi * wavelength_cm(energy) * dist * delta_beta / pixel_size**2
    if alpha is None:
        raise ValueError("phase retrieval needs delta_beta or alpha")
    return wavelength_cm(energy) * dist / (4 * math.pi * alpha) / pixel_size**2


def reach(c: float, tail: float = TAIL) -> int:
    """Pixels beyond which the generalised kernel's mass (along one axis, both sides) is below ``tail``."""
    a = c / (4 * math.pi**2)  # H = 1 / (1 + a * sum 4 sin^2(k/2)), k in radians per pixel
    mu = math.acosh(1 + 1 / (2 * a))  # the kernel decays as exp(-mu |n|)
    # mass beyond R: 2 exp(-mu (R + 1)) / (1 + exp(-mu))
    return max(1, math.ceil(math.log(2 / (tail * (1 + math.exp(-mu)))) / mu - 1))


def _freq_term(n: int, kind: str, half: bool) -> np.ndarray:
    f = np.fft.rfftfreq(n) if half else np.fft.fftfreq(n)
    return f**2 if kind == "tomopy" else (np.sin(np.pi * f) / np.pi) ** 2


@lru_cache(maxsize=8)
def paganin_filter(ny: int, nx: int, c: float, kind: str) -> np.ndarray:
    """H on the ``rfft2`` grid of an ny x nx image, float32."""
    h = 1.0 / (1.0 + c * (_freq_term(ny, kind, False)[:, None] + _freq_term(nx, kind, True)[None, :]))
    return h.astype(np.float32)


def padded_shape(rows: int, cols: int, pad: int) -> tuple[int, int]:
    if pad == 0:
        return rows, cols
    import scipy.fft as sfft  # lazy: see tomosnake/__init__.py

    return sfft.next_fast_len(rows + 2 * pad, real=True), sfft.next_fast_len(cols + 2 * pad, real=True)


def batch_size(n: int, ny: int, nx: int) -> int:
    return max(1, min(n, BATCH_BYTES // (BYTES_PER_PADDED_PIXEL * ny * nx)))


def retrieve_phase(block: np.ndarray, c: float, kind: str = "tomopy", pad: int = 0,
                   workers: int = 1) -> np.ndarray:
    """Filter every projection of ``block`` with H, edge-padding it by ``pad`` pixels, in place."""
    if kind not in KINDS:
        raise ValueError(f"phase filter '{kind}' is not one of {KINDS}")
    import scipy.fft as sfft  # lazy: see tomosnake/__init__.py

    n, rows, cols = block.shape
    ny, nx = padded_shape(rows, cols, pad)
    h = paganin_filter(ny, nx, c, kind)
    widths = ((0, 0), (pad, ny - rows - pad), (pad, nx - cols - pad))
    step = batch_size(n, ny, nx)
    for k0 in range(0, n, step):
        k1 = min(k0 + step, n)
        spec = sfft.rfft2(np.pad(block[k0:k1], widths, mode="edge"), workers=workers)
        spec *= h
        out = sfft.irfft2(spec, s=(ny, nx), workers=workers)
        block[k0:k1] = out[:, pad:pad + rows, pad:pad + cols]
        del spec, out  # else they live on while the next batch is transformed: 16, not 12 bytes per pixel
    return block


@register("phase", order=100)
def phase(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    p = cfg.phase
    if not p.enabled:
        return None
    kind = p.filter
    c = coefficient(p.pixel_size, p.dist, p.energy, p.alpha, p.delta_beta)
    pad = reach(c) if p.pad else 0
    rows = pad if (p.pad and kind == "generalised") else FULL

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        return retrieve_phase(block, c, kind, pad, ctx.threads)

    def work(shape: tuple[int, int, int], threads: int) -> int:
        ny, nx = padded_shape(shape[1], shape[2], pad)
        return batch_size(shape[0], ny, nx) * BYTES_PER_PADDED_PIXEL * ny * nx + ny * (nx // 2 + 1) * 4

    return Step(f"phase:{kind}", apply, needs=Needs(rows=rows), work=work, threaded=True)
