"""Accuracy of reconstructed slices against a known truth (phantom tests and benchmarks)."""

from __future__ import annotations

import numpy as np


def fov_mask(n: int, ratio: float = 0.98) -> np.ndarray:
    """Pixels of an n x n slice inside the centred disc of radius ratio * n / 2."""
    c = np.arange(n) - (n - 1) / 2
    return np.hypot(c[:, None], c[None, :]) < ratio * n / 2


def accuracy(rec: np.ndarray, truth: np.ndarray, ratio: float = 0.98) -> dict[str, float]:
    """Gain, RMSE and SSIM of slices ``rec`` against ``truth`` (both (k, n, n)), inside the FOV.

    Each slice is first fitted to the truth by least squares (gain and offset); RMSE is
    relative to the truth's range, SSIM (scikit-image) is computed on the fitted slice
    with that range, over the FOV's bounding square with outside pixels set to the truth.
    Figures are means over slices.
    """
    from skimage.metrics import structural_similarity

    m = fov_mask(rec.shape[-1], ratio)
    gains, rmses, ssims = [], [], []
    for r, t in zip(np.asarray(rec, np.float64), np.asarray(truth, np.float64), strict=True):
        a, b = r[m], t[m]
        design = np.stack([a, np.ones_like(a)], axis=1)
        (gain, offset), *_ = np.linalg.lstsq(design, b, rcond=None)
        rng = float(b.max() - b.min()) or 1.0
        fitted = np.where(m, gain * r + offset, t)
        gains.append(gain)
        rmses.append(float(np.sqrt(np.mean((fitted[m] - b) ** 2))) / rng)
        ssims.append(float(structural_similarity(fitted, t, data_range=rng)))
    return {"gain": float(np.mean(gains)), "rmse": float(np.mean(rmses)), "ssim": float(np.mean(ssims))}
