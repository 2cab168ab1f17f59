"""Fourier ring correlation on images whose resolution is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tomosnake.recon.frc import frc, half_bit


def _pair(sigma: float, n: int = 256, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Two noisy copies of white-noise texture blurred by a Gaussian of ``sigma`` px, and the predicted
    crossing: signal power falls as exp(-4 pi^2 sigma^2 f^2), so FRC = SNR / (1 + SNR) meets the
    (large-ring) 1/2-bit threshold T where SNR = T / (1 - T)."""
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.normal(0, 1, (3, n, n)), sigma, axes=(1, 2), mode="wrap")
    a, b = tex + rng.normal(0, noise, tex.shape), tex + rng.normal(0, noise, tex.shape)
    s0 = 1.0 / noise**2  # white texture of unit variance: SNR at f = 0 is 1 / noise^2 per Fourier pixel
    t = 0.2071 / 1.2071  # the threshold's limit for large rings
    f = np.sqrt(np.log(s0 * (1 - t) / t)) / (2 * np.pi * sigma)
    return a, b, float(f)


@pytest.mark.parametrize("sigma", [1.5, 3.0])
def test_crossing_moves_as_the_blur_predicts(sigma):
    a, b, predicted = _pair(sigma)
    got = frc(a, b).crossing
    assert got == pytest.approx(predicted, rel=0.1)  # measured within 0.3 %


def test_identical_images_never_cross_and_independent_noise_crosses_at_once():
    rng = np.random.default_rng(1)
    img = rng.normal(0, 1, (128, 128))
    same = frc(img, img)
    assert same.crossing is None and min(same.frc[1:]) > 0.99
    other = frc(img, rng.normal(0, 1, (128, 128)))
    assert other.crossing is not None and other.crossing < 0.05
    assert half_bit(np.array([1e12]))[0] == pytest.approx(0.2071 / 1.2071, rel=1e-5)
    assert half_bit(np.array([1]))[0] == pytest.approx(1.0, abs=1e-3)


def test_half_data_reconstructions_resolve_less_when_the_detector_blurs():
    """Even/odd reconstructions (the run's estimate) of a scan whose projections are blurred by a known
    Gaussian: the crossing falls as the blur grows, about as 1/sigma (measured 0.266 and 0.170 cycles/px
    at sigma 1.5 and 3 px; unblurred the FRC stays above the threshold up to Nyquist)."""
    from tomosnake.config import ReconConfig
    from tomosnake.phantom import PhantomSpec, sinogram_block
    from tomosnake.recon.chain import reconstruct_block
    from tomosnake.recon.frc import even_odd

    spec = PhantomSpec(n_proj=400, n_rows=5, n_cols=128)
    theta = spec.theta()
    line = sinogram_block(spec, theta, np.array([1, 2, 3]))
    rng = np.random.default_rng(0)
    crossing = {}
    for sigma in (0.0, 1.5, 3.0):
        blurred = ndimage.gaussian_filter1d(line, sigma, axis=2) if sigma else line
        trans = (rng.poisson(2e4 * np.exp(-blurred)) / 2e4).astype(np.float32)
        (a, ta), (b, tb) = even_odd(trans, theta)
        ra, rb = (reconstruct_block(p, t, ReconConfig(), spec.center, False, 2) for p, t in ((a, ta), (b, tb)))
        crossing[sigma] = frc(ra, rb).crossing
    assert crossing[0.0] is None or crossing[0.0] > 0.4
    assert 1.3 < crossing[1.5] / crossing[3.0] < 2.2
    for sigma in (1.5, 3.0):  # within 2.5x of where the blur's transfer exp(-2 pi^2 sigma^2 f^2) is 1/e
        assert 0.5 / (np.pi * sigma * np.sqrt(2)) < crossing[sigma] < 2.5 / (np.pi * sigma * np.sqrt(2))
