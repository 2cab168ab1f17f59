"""Paganin phase retrieval in the sample's terms (delta/beta) on a Fresnel-propagated homogeneous object.

The phantom: three spheres of one material (delta = 1e-6, delta/beta = 300) at 20 keV, 5 um pixels;
the exit wave exp(-k (beta + i delta) T) is propagated 100 cm by the Fresnel transfer function on a
grid 4x finer than the detector, whose pixels then average the intensity. Retrieval plus -log
divided by mu = 4 pi beta / lambda must give back the projected thickness T.
"""

from __future__ import annotations

import numpy as np
import pytest

from tomosnake.config import PreprocessConfig
from tomosnake.corrections import Context, configured_steps, phase

ENERGY, PIXEL, DIST = 20.0, 5e-4, 100.0  # keV, cm, cm
DELTA, DELTA_BETA = 1e-6, 300.0
N, OVERSAMPLE = 128, 4
# Relative RMSE of the thickness (of its maximum), measured: 0.022 with delta/beta (the Paganin
# approximation's own error at the spheres' edges), 0.218 with alpha = beta/delta, 0.439 without.
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def scan() -> tuple[np.ndarray, np.ndarray, float]:
    """(intensity / flat, projected thickness in cm) on the detector, and mu in 1/cm."""
    lam = phase.wavelength_cm(ENERGY)
    beta = DELTA / DELTA_BETA
    m, q = N * OVERSAMPLE, PIXEL / OVERSAMPLE
    y, x = (np.mgrid[0:m, 0:m] - (m - 1) / 2) * q
    thickness = np.zeros((m, m))
    for x0, y0, r in ((0, 0, 40), (25, 20, 12), (-30, -25, 8)):
        thickness += 2 * np.sqrt(np.clip((r * PIXEL) ** 2 - (x - x0 * PIXEL) ** 2 - (y - y0 * PIXEL) ** 2, 0, None))
    wave = np.exp(-2 * np.pi / lam * (beta + 1j * DELTA) * thickness)
    f = np.fft.fftfreq(m, d=q)
    fresnel = np.exp(-1j * np.pi * lam * DIST * (f[:, None] ** 2 + f[None, :] ** 2))
    intensity = np.abs(np.fft.ifft2(np.fft.fft2(wave) * fresnel)) ** 2

    def detector(a: np.ndarray) -> np.ndarray:
        return a.reshape(N, OVERSAMPLE, N, OVERSAMPLE).mean(axis=(1, 3))

    return detector(intensity), detector(thickness), 4 * np.pi * beta / lam


def retrieved_error(scan, **sample) -> float:
    intensity, thickness, mu = scan
    cfg = PreprocessConfig.model_validate(
        {"phase": {"enabled": True, "pixel_size": PIXEL, "dist": DIST, "energy": ENERGY, **sample}})
    step = configured_steps(cfg)[-1]
    ctx = Context(proj=(0, 1), rows=(0, N), image=(N, N), raw_rows=(0, N), source=None)  # type: ignore[arg-type]
    out = step.apply(intensity[None].astype(np.float32), ctx)[0] if sample else intensity
    return float(np.sqrt(np.mean((-np.log(out) / mu - thickness) ** 2)) / thickness.max())


def test_delta_beta_recovers_the_thickness(scan):
    right = retrieved_error(scan, delta_beta=DELTA_BETA)
    none = retrieved_error(scan)
    assert right < TOLERANCE
    assert right < 0.1 * none
    assert retrieved_error(scan, alpha=1 / DELTA_BETA) > 5 * right  # alpha = beta/delta: 39x too weak a filter


def test_alpha_keeps_tomopy_meaning(scan):
    """alpha = beta / (4 pi^2 delta) is the same filter; delta_beta wins over alpha."""
    assert phase.alpha_of(DELTA_BETA) == pytest.approx(1 / (4 * np.pi**2 * DELTA_BETA))
    c_delta = phase.coefficient(PIXEL, DIST, ENERGY, delta_beta=DELTA_BETA)
    assert c_delta == pytest.approx(np.pi * phase.wavelength_cm(ENERGY) * DIST * DELTA_BETA / PIXEL**2)
    assert phase.coefficient(PIXEL, DIST, ENERGY, alpha=phase.alpha_of(DELTA_BETA)) == pytest.approx(c_delta)
    assert retrieved_error(scan, alpha=phase.alpha_of(DELTA_BETA)) == pytest.approx(
        retrieved_error(scan, delta_beta=DELTA_BETA), rel=1e-5)
    assert retrieved_error(scan, delta_beta=DELTA_BETA, alpha=0.5) == pytest.approx(
        retrieved_error(scan, delta_beta=DELTA_BETA), rel=1e-6)
