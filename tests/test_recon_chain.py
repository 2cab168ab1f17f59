"""The whole chain of a block, the planner's sizes, and dtype conversion."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tomosnake.config import Convert, ReconConfig
from tomosnake.phantom import PhantomSpec, ground_truth, sinogram_block
from tomosnake.recon import (
    block_overhead_bytes,
    conversion_range,
    convert,
    gridrec,
    output_width,
    quality,
    reconstruct_block,
    slice_bytes,
)

SPEC = PhantomSpec(n_cols=128, n_rows=8, n_proj=180, center_offset=-4.6)
ROWS = np.arange(2, 6)


@pytest.fixture(scope="module")
def scan():
    """Noisy transmission (Poisson, 20000 counts in the open beam) and the truth."""
    att = sinogram_block(SPEC, SPEC.theta(), ROWS)
    rng = np.random.default_rng(3)
    trans = (rng.poisson(20000 * np.exp(-att)) / 20000).astype(np.float32)
    return trans, ground_truth(SPEC, ROWS)


def test_block_from_transmission_matches_truth(scan):
    trans, truth = scan
    rec = reconstruct_block(trans, SPEC.theta(), ReconConfig(), SPEC.center, log_applied=False, threads=2)
    assert rec.shape == (4, 128, 128) and rec.dtype == np.float32
    acc = quality.accuracy(rec, truth)
    assert acc["rmse"] < 0.09 and acc["ssim"] > 0.6 and 0.95 < acc["gain"] < 1.08  # measured with noise
    np.testing.assert_array_equal(trans, scan[0])  # input untouched


def test_minus_log_switch(scan):
    trans, _ = scan
    logged = -np.log(trans)
    a = reconstruct_block(trans, SPEC.theta(), ReconConfig(), SPEC.center, log_applied=False, threads=2)
    b = reconstruct_block(logged, SPEC.theta(), ReconConfig(), SPEC.center, log_applied=True, threads=2)
    c = reconstruct_block(trans, SPEC.theta(), ReconConfig(minus_log=True), SPEC.center, log_applied=True, threads=2)
    d = reconstruct_block(logged, SPEC.theta(), ReconConfig(minus_log=False), SPEC.center, log_applied=False,
                          threads=2)
    for other in (b, c, d):
        np.testing.assert_allclose(other, a, atol=1e-4 * np.ptp(a))
    wrong = reconstruct_block(logged, SPEC.theta(), ReconConfig(), SPEC.center, log_applied=False, threads=2)
    assert np.abs(wrong - a).max() > 0.1 * np.ptp(a)


def test_post_steps_in_chain(scan):
    trans, _ = scan
    cfg = ReconConfig(ring_removal={"enabled": True, "rwidth": 3}, circ_mask={"enabled": True, "ratio": 0.9,
                                                                              "val": -7.0})
    rec = reconstruct_block(trans, SPEC.theta(), cfg, SPEC.center, False, 2)
    assert rec[0, 0, 0] == -7.0 and rec[0, 64, 64] != -7.0
    assert not np.isnan(rec).any()


def test_output_width():
    assert output_width(640, ReconConfig()) == 640
    cfg = ReconConfig(sino_360_to_180={"enabled": True, "old_center": 600.4})
    assert output_width(640, cfg) == 2 * 640 - 2 * 39
    with pytest.raises(ValueError, match="old_center"):
        output_width(640, ReconConfig(sino_360_to_180={"enabled": True}))


@pytest.mark.parametrize("steps", [{}, {"ring_removal": {"enabled": True}}, {"stripe": {"enabled": True}},
                                   {"stripe": {"enabled": True, "function": "sorting"}}],
                         ids=["plain", "ring", "stripe", "stripe-sorting"])
def test_memory_estimate_bounds_numpy_peak(steps):
    """Estimate >= the traced numpy peak (finufft's own buffers are not traced) and < 2.5x it."""
    n, n_proj, k = 256, 300, 6
    cfg = ReconConfig(**steps)
    proj = np.random.default_rng(0).uniform(0.3, 0.9, (n_proj, k, n)).astype(np.float32)
    gridrec.forget()  # a job's first load: nothing kept from earlier reconstructions in this process
    tracemalloc.start()
    try:
        reconstruct_block(proj, np.linspace(0, 180, n_proj, endpoint=False), cfg, n / 2, False, 2)
        peak = tracemalloc.get_traced_memory()[1] + proj.nbytes
    finally:
        tracemalloc.stop()
    estimate = block_overhead_bytes(n_proj, n, cfg, 2) + k * slice_bytes(n_proj, n, cfg)
    assert peak <= estimate < 2.5 * peak


# ------------------------------------------------------------------- conversion
def test_range_modes():
    sample = np.array([0.0, 1.0, 2.0, 3.0, np.nan], dtype=np.float32)
    assert conversion_range(sample, Convert(enabled=True, mode="minmax")) == (0.0, 3.0)
    lo, hi = conversion_range(sample, Convert(enabled=True, mode="std", n_sigma=2.0))
    sd = np.std([0, 1, 2, 3])
    assert lo == pytest.approx(1.5 - 2 * sd) and hi == pytest.approx(1.5 + 2 * sd)
    assert conversion_range(sample, Convert(enabled=True, mode="manual", min=-1, max=5)) == (-1.0, 5.0)
    # stored limits win whatever the mode (the GUI's rule); a missing one is computed
    assert conversion_range(sample, Convert(enabled=True, mode="std", min=0.5, max=0.7)) == (0.5, 0.7)
    assert conversion_range(sample, Convert(enabled=True, mode="minmax", max=9.0)) == (0.0, 9.0)


def test_convert_formulas():
    x = np.array([[[-1.0, 0.0, 0.25, 1.0, 2.0]]], dtype=np.float32)
    u16 = convert(x, Convert(enabled=True, dtype="uint16"), 0.0, 1.0)
    np.testing.assert_array_equal(u16, [[[0, 0, 16384, 65535, 65535]]])
    assert u16.dtype == np.uint16
    u8 = convert(x, Convert(enabled=True, dtype="uint8"), 0.0, 1.0)
    np.testing.assert_array_equal(u8, [[[0, 0, 64, 255, 255]]])
    f16 = convert(x, Convert(enabled=True, dtype="float16"), 0.0, 1.0)
    assert f16.dtype == np.float16 and np.array_equal(f16, x.astype(np.float16))
    assert convert(x, Convert(enabled=False, dtype="uint8"), 0.0, 1.0).dtype == np.float32


def test_conversion_identical_across_chunks(scan):
    """One range from a sample of the volume; chunks converted apart equal the whole converted at once."""
    trans, _ = scan
    cfg = ReconConfig(convert={"enabled": True, "dtype": "uint16", "mode": "std"})
    volume = reconstruct_block(trans, SPEC.theta(), cfg, SPEC.center, False, 2)
    chunks = [reconstruct_block(trans[:, a:b], SPEC.theta(), cfg, SPEC.center, False, 2) for a, b in [(0, 1), (1, 4)]]
    vmin, vmax = conversion_range(volume[::2], cfg.convert)  # a sample of the volume, computed once
    whole = convert(volume, cfg.convert, vmin, vmax)
    split = np.concatenate([convert(volume[a:b], cfg.convert, vmin, vmax) for a, b in [(0, 1), (1, 4)]])
    np.testing.assert_array_equal(split, whole)
    parts = np.concatenate([convert(c, cfg.convert, vmin, vmax) for c in chunks])
    # slices are gridded in pairs, so a row reconstructed in another block differs by the
    # gridding tolerance (~4e-5 of the range): at most a few uint16 steps
    assert np.abs(parts.astype(np.int64) - whole).max() <= 4
    # per-chunk ranges (the mistake the issue warns about) would not match
    own = np.concatenate([convert(c, cfg.convert, *conversion_range(c, cfg.convert)) for c in chunks])
    assert np.abs(own.astype(np.int64) - whole).max() > 100

