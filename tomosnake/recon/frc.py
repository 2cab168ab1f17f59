"""Resolution by Fourier ring correlation (FRC) of two reconstructions from independent halves of the data.

Two slices are reconstructed from the even and the odd projections; their FRC per ring of
spatial frequency is compared with the 1/2-bit threshold (van Heel & Schatz 2005, J. Struct.
Biol. 151:250), and the resolution is the period at the first crossing.  Written here because
no library the project uses offers FRC (numpy FFTs only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


MAX_POINTS = 256  # rings stored with a result


@dataclass(frozen=True)
class FRC:
    """FRC per ring: ``freq`` in cycles per pixel (0 to 0.5), ``frc`` and the 1/2-bit ``threshold``."""

    freq: list[float]
    frc: list[float]
    threshold: list[float]
    crossing: float | None  # cycles per pixel where frc first falls below the threshold; None: never

    @property
    def resolution_px(self) -> float | None:
        """Resolution as a period in pixels (1 / crossing)."""
        return None if not self.crossing else 1.0 / self.crossing

    def to_dict(self, max_points: int = MAX_POINTS) -> dict:
        """JSON-ready, the curves thinned to at most ``max_points`` rings (they go into HDF5 attributes)."""
        step = max(1, -(-len(self.freq) // max_points))
        d = asdict(self)
        for key in ("freq", "frc", "threshold"):
            d[key] = [round(v, 6) for v in d[key][::step]]
        return d | {"resolution_px": self.resolution_px}


def _apodisation(n: int) -> np.ndarray:
    """A disc with a cosine edge (n, n), so an image's border adds no high frequencies."""
    c = (np.arange(n) - (n - 1) / 2).astype(np.float32)
    r = np.hypot(c[:, None], c[None, :]) / np.float32(n / 2)
    w = np.clip((0.95 - r) / 0.15, 0, 1)
    return 0.5 - 0.5 * np.cos(np.pi * w)


def half_bit(n_pixels: np.ndarray) -> np.ndarray:
    """The 1/2-bit threshold for rings of ``n_pixels`` Fourier pixels."""
    s = 1 / np.sqrt(np.maximum(n_pixels, 1))
    return (0.2071 + 1.9102 * s) / (1.2071 + 0.9102 * s)


def frc(a: np.ndarray, b: np.ndarray, workers: int = 1) -> FRC:
    """FRC of slices ``a`` and ``b`` ((n, n) or a stack (k, n, n): sums over the stack), one-pixel rings.

    Real FFTs: the half plane they keep holds every ring sum once the columns that stand for two
    (all but the first and, for even n, the last) are counted twice."""
    import scipy.fft  # lazy: see tomosnake/__init__.py

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    n = a.shape[-1]
    window = _apodisation(n)
    fa = scipy.fft.rfft2(a * window, workers=workers)
    fb = scipy.fft.rfft2(b * window, workers=workers)
    ky = np.fft.fftfreq(n) * n
    kx = np.arange(fa.shape[-1])
    ring = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(int)
    twice = np.full(kx.size, 2.0)
    twice[0] = 1.0
    if n % 2 == 0:
        twice[-1] = 1.0
    weight = np.broadcast_to(twice, ring.shape).ravel()
    ring = ring.ravel()
    keep = ring <= n // 2
    ring, weight = ring[keep], weight[keep]

    def rsum(v: np.ndarray) -> np.ndarray:
        return np.bincount(ring, v.reshape(v.shape[0], -1)[:, keep].sum(axis=0) * weight, minlength=n // 2 + 1)

    num = rsum((fa * fb.conj()).real)
    den = np.sqrt(rsum(np.abs(fa) ** 2) * rsum(np.abs(fb) ** 2))
    corr = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    thresh = half_bit(np.bincount(ring, weight, minlength=n // 2 + 1) * a.shape[0])
    freq = np.arange(n // 2 + 1) / n
    below = np.flatnonzero((corr < thresh) & (freq > 0))
    crossing = None
    if below.size:
        i = int(below[0])
        d0, d1 = corr[i - 1] - thresh[i - 1], corr[i] - thresh[i]  # linear interpolation of the difference
        crossing = float(freq[i - 1] + (freq[i] - freq[i - 1]) * d0 / (d0 - d1)) if d0 > d1 else float(freq[i])
    return FRC(freq.tolist(), corr.tolist(), thresh.tolist(), crossing)


def even_odd(proj: np.ndarray,
             theta_deg: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The even and the odd projections with their angles: two independent halves of a scan."""
    return (proj[0::2], theta_deg[0::2]), (proj[1::2], theta_deg[1::2])
