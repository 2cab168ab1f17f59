"""Each correction against an independent reference or an analytic result (small arrays, float32 tolerances)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import integrate, special
from scipy.ndimage import median_filter

from tomosnake.config import PreprocessConfig
from tomosnake.corrections import (
    FULL,
    REGISTRY,
    Context,
    Facts,
    Needs,
    Step,
    configured_steps,
    flatdark,
    phase,
    register,
)
from tomosnake.corrections.background import normalize_bg
from tomosnake.corrections.crop import window
from tomosnake.corrections.flatten import flatten
from tomosnake.corrections.i0 import divide_by_air
from tomosnake.corrections.minuslog import minus_log
from tomosnake.corrections.outlier import median3x3, remove_outlier
from tomosnake.corrections.unity import to_unity
from tomosnake.phantom import PhantomSpec, sinogram_block, write_scan
from tomosnake.stages.preprocess_chunk import build_chain, process_whole
from tomosnake.io.scan import RawScan, ScanError

RNG = np.random.default_rng(7)


def cfg(**sections) -> PreprocessConfig:
    return PreprocessConfig.model_validate(sections)


class Frames:
    """An in-memory flat/dark/monitor source (the `Source` protocol), for tests without a file."""

    def __init__(self, flats: np.ndarray, darks: np.ndarray, i0: np.ndarray | None = None):
        self._f, self._d, self._i0 = flats, darks, i0

    def flats(self, r0: int, r1: int) -> np.ndarray:
        return self._f[:, r0:r1]

    def darks(self, r0: int, r1: int) -> np.ndarray:
        return self._d[:, r0:r1]

    def i0(self, p0: int, p1: int) -> np.ndarray | None:
        return None if self._i0 is None else self._i0[p0:p1]

    def frames_label(self, kind: str) -> str:
        return f"in-memory {kind} fields"


def ctx_for(block: np.ndarray, source: Frames | None = None) -> Context:
    n, r, c = block.shape
    return Context(proj=(0, n), rows=(0, r), image=(r, c), raw_rows=(0, r), source=source)  # type: ignore[arg-type]


def run_step(name: str, config: PreprocessConfig, block: np.ndarray, source: Frames | None = None,
             has_i0: bool | None = None) -> np.ndarray:
    (step,) = [s for s in configured_steps(config, Facts(has_i0)) if s.name.startswith(name)]
    return step.apply(block.copy(), ctx_for(block, source))


# ----------------------------------------------------------------------------- registry
def test_chain_follows_the_gui_order_and_overlaps_add_up():
    every = cfg(i0={"enabled": True}, normalize_to_unity={"enabled": True}, flatten={"enabled": True, "size": 8},
                crop={"enabled": True}, outlier={"enabled": True, "size": 5}, stripe={"enabled": True},
                background={"enabled": True}, minus_log_before_phase=True, phase={"enabled": True},
                minus_log_after_phase=True)
    chain = build_chain(every, has_i0=True)
    assert chain.names == ["flat_dark", "i0_monitor", "normalize_to_unity", "flatten", "crop", "outlier",
                           "background", "minus_log_before_phase", "phase:tomopy",
                           "minus_log_after_phase"]
    assert chain.log_applied
    # flatten 4 rows then outlier 2 rows: 6 rows of raw data around each output row
    assert build_chain(cfg(flatten={"enabled": True, "size": 8}, outlier={"enabled": True, "size": 5})).needs \
        == Needs(proj=0, rows=6)
    assert Needs(0, 3).then(Needs(FULL, 2)) == Needs(FULL, 5)
    assert Needs(0, 3).then(Needs(0, FULL)).rows is FULL
    assert not build_chain(cfg()).log_applied


def test_a_new_correction_is_one_registered_function():
    @register("test_double", order=55)
    def double(config: PreprocessConfig, facts: Facts) -> Step | None:
        return Step("test_double", lambda block, ctx: block * 2, needs=Needs(rows=1))

    try:
        chain = build_chain(cfg(crop={"enabled": True}, outlier={"enabled": True}))
        assert chain.names == ["flat_dark", "crop", "test_double", "outlier"]
        assert chain.needs == Needs(0, 2)
        with pytest.raises(ValueError, match="registered twice"):
            register("test_double", order=1)(double)
    finally:
        del REGISTRY["test_double"]


# ----------------------------------------------------------------------------- flat/dark
@pytest.mark.parametrize("method", ["mean", "median"])
def test_flat_dark_normalisation_matches_the_formula(method, monkeypatch):
    monkeypatch.setattr(flatdark, "FRAME_BATCH_BYTES", 5 * 7 * 4 * 3)  # 3 rows per batch: batching exercised
    proj = RNG.uniform(100, 1000, (4, 10, 7)).astype(np.float32)
    flats = RNG.uniform(900, 1100, (5, 10, 7)).astype(np.float32)
    darks = RNG.uniform(90, 110, (3, 10, 7)).astype(np.float32)
    red = np.median if method == "median" else np.mean
    f64, d64 = red(flats.astype(np.float64), axis=0), red(darks.astype(np.float64), axis=0)
    src = Frames(flats, darks)
    fd = {"method": method}
    got = run_step("flat_dark", cfg(flat_dark=fd), proj, src)
    want = (proj - d64) / np.maximum(f64 - d64, 1e-6)
    assert np.allclose(got, want, rtol=1e-5)
    dark, flat = d64.astype(np.float32), f64.astype(np.float32)
    dark[0, 0] = 2000.0  # dark above flat: the denominator floor applies (the step itself refuses such flats)
    assert np.allclose(flatdark.normalize(proj.copy(), flat, dark), (proj - dark) / np.maximum(flat - dark, 1e-6))
    bright = darks.copy()
    bright[:, 0, 0] = 2000.0
    with pytest.raises(ScanError, match="in-memory flat fields frame 0 is at or below the reduced dark fields"):
        run_step("flat_dark", cfg(flat_dark=fd), proj, Frames(flats, bright))
    got = run_step("flat_dark", cfg(flat_dark=fd | {"normalize_dark": False}), proj, src)
    assert np.allclose(got, proj / f64, rtol=1e-6)
    got = run_step("flat_dark", cfg(flat_dark=fd | {"normalize_flat": False}), proj, src)
    assert np.allclose(got, proj - d64, rtol=1e-6)
    assert build_chain(cfg(flat_dark={"normalize_flat": False, "normalize_dark": False})).names == []


# ----------------------------------------------------------------------------- i0
@pytest.fixture(scope="module")
def drifting_scan(tmp_path_factory) -> tuple[Path, PhantomSpec]:
    """Noise-free float32 phantom with a 20 % top-up saw-tooth: after correction, exactly exp(-ray sums)."""
    spec = PhantomSpec(n_proj=60, n_rows=6, n_cols=64, noise=False, dtype="float32", i0_drift=0.2)
    return write_scan(tmp_path_factory.mktemp("i0") / "drift.h5", spec), spec


@pytest.mark.parametrize("source", ["monitor", "air", "auto"])
def test_i0_correction_removes_the_top_up_saw_tooth(drifting_scan, source):
    path, spec = drifting_scan
    truth = np.exp(-sinogram_block(spec, spec.theta(), np.arange(spec.n_rows)))
    assert np.all(truth[:, :, :3] == 1) and np.all(truth[:, :, -3:] == 1)  # the air columns used below
    with RawScan(path) as scan:
        uncorrected = process_whole(scan, cfg())
        got = process_whole(scan, cfg(i0={"enabled": True, "source": source, "air_columns": 3}))
        assert build_chain(cfg(i0={"enabled": True, "source": source}), scan.info.has_i0).names[1] == \
            ("i0_air" if source == "air" else "i0_monitor")
    assert np.abs(uncorrected - truth).max() > 0.15  # the drift is there without the correction
    assert np.abs(got - truth).max() < 2e-5


def test_i0_from_air_makes_the_air_one_and_survives_dark_projections():
    block = RNG.uniform(0.5, 0.9, (3, 4, 20)).astype(np.float32)
    block[1] = 0.0
    got = divide_by_air(block.copy(), 3)
    air = np.concatenate([got[:, :, :3], got[:, :, -3:]], axis=2).mean(axis=(1, 2))
    assert np.allclose(air[[0, 2]], 1.0, atol=1e-6) and np.all(got[1] == 0)
    with pytest.raises(ValueError, match="air_columns"):
        divide_by_air(block, 11)
    with pytest.raises(ValueError, match="no beam-monitor"):
        build_chain(cfg(i0={"enabled": True, "source": "monitor"}), has_i0=False)
    assert build_chain(cfg(i0={"enabled": True})).needs.rows is FULL  # auto, monitor unknown: air's needs


# ----------------------------------------------------------------------------- unity, flatten, crop
def test_normalise_to_unity_makes_every_projection_mean_one():
    block = RNG.uniform(0.1, 3.0, (5, 6, 9)).astype(np.float32)
    got = to_unity(block.copy())
    assert np.allclose(got.mean(axis=(1, 2), dtype=np.float64), 1.0, atol=1e-6)
    assert np.allclose(got * block.mean(axis=(1, 2), keepdims=True), block, rtol=1e-6)


@pytest.mark.parametrize("size", [3, 4, 7])
def test_flatten_subtracts_the_box_mean(size):
    block = RNG.normal(1.0, 0.2, (2, 11, 13)).astype(np.float32)
    lo, hi = size // 2, size - 1 - size // 2  # scipy centres an even box one pixel early
    padded = np.pad(block.astype(np.float64), ((0, 0), (lo, hi), (lo, hi)), mode="symmetric")
    box = sliding_window_view(padded, (size, size), axis=(1, 2)).mean(axis=(-2, -1))
    got = flatten(block.copy(), size, threads=2)
    assert np.allclose(got, block - box + 1, atol=2e-6)


def test_crop_window_and_its_errors():
    c = cfg(crop={"enabled": True, "ranges": (2, -1, 5, 40)})
    assert window(30, 64, c) == (2, 30, 5, 40)
    assert window(30, 64, cfg()) == (0, 30, 0, 64)
    assert window(30, 64, cfg(crop={"enabled": True, "ranges": (0, 100, 0, -1)})) == (0, 30, 0, 64)
    for bad in [(10, 5, 0, -1), (0, -2, 0, -1), (-1, 5, 0, 10)]:
        with pytest.raises(ValueError, match="crop.ranges"):
            window(30, 64, cfg(crop={"enabled": True, "ranges": bad}))
    block = RNG.random((2, 30, 64)).astype(np.float32)
    (step,) = configured_steps(cfg(flat_dark={"normalize_flat": False, "normalize_dark": False},
                                   crop={"enabled": True, "ranges": (2, -1, 5, 40)}))
    # a tile holding rows 1:20 of the image keeps rows 2:20, which are rows 0:18 of the cropped image
    ctx = Context(proj=(0, 2), rows=(1, 20), image=(30, 64), raw_rows=(1, 20), source=None)  # type: ignore[arg-type]
    assert np.array_equal(step.apply(block[:, 1:20], ctx), block[:, 2:20, 5:40])
    assert step.reframe(ctx).rows == (0, 18) and step.reframe(ctx).image == (28, 35)


# ----------------------------------------------------------------------------- outlier
@pytest.mark.parametrize("size", [3, 4, 5])
def test_outlier_removal_matches_a_median_reference(size):
    block = RNG.normal(1.0, 0.05, (3, 12, 15)).astype(np.float32)
    hot = RNG.random(block.shape) < 0.05
    block[hot] += 2.0
    lo, hi = size // 2, size - 1 - size // 2
    padded = np.pad(block, ((0, 0), (lo, hi), (lo, hi)), mode="symmetric")
    # scipy's median filter takes the element of rank size*size//2: the upper median for even sizes
    windows = sliding_window_view(padded, (size, size), axis=(1, 2)).reshape(*block.shape, size * size)
    med = np.sort(windows, axis=-1)[..., size * size // 2]
    want = np.where(block - med >= np.float32(0.4), med, block)
    got = remove_outlier(block.copy(), 0.4, size, threads=2)
    assert np.array_equal(got, want)
    assert np.abs(got - 1).max() < 0.5  # every zinger went
    assert np.array_equal(got[~hot & (want == block)], block[~hot & (want == block)])


def test_the_3x3_median_in_strips_is_scipys():
    img = RNG.random((37, 50)).astype(np.float32)
    assert np.array_equal(median3x3(img, strip=5), median_filter(img, size=3))


def test_outlier_removal_leaves_dark_spots():
    block = np.ones((1, 9, 9), np.float32)
    block[0, 4, 4] = -5.0
    assert np.array_equal(remove_outlier(block.copy(), 0.4, 3), block)


# ----------------------------------------------------------------------------- background
def test_background_correction_matches_normalize_bg():
    block = RNG.uniform(0.2, 1.2, (2, 5, 17)).astype(np.float32)
    block[0, 1, :3] = -1.0  # a non-positive air mean counts as 1
    air = 3
    want = block.astype(np.float64)
    for m in range(2):
        for r in range(5):
            left = block[m, r, :air].mean() if block[m, r, :air].mean() > 0 else 1.0
            right = block[m, r, -air:].mean() if block[m, r, -air:].mean() > 0 else 1.0
            want[m, r] /= left + (right - left) * np.arange(17) / 16
    assert np.allclose(normalize_bg(block.copy(), air), want, rtol=1e-6)


def test_background_correction_removes_a_linear_air_ramp():
    sample = np.ones((1, 4, 40))
    sample[0, :, 10:30] = 0.5
    ramp = np.linspace(0.8, 1.1, 40)
    # one air pixel at each side: the line through them is the ramp itself
    assert np.allclose(normalize_bg((sample * ramp).astype(np.float32), air=1), sample, atol=1e-6)
    # constant air per row, different in every row and projection: removed with any air width
    levels = RNG.uniform(0.5, 1.5, (3, 4, 1))
    assert np.allclose(normalize_bg((sample * levels).astype(np.float32), air=5), sample, atol=1e-6)


# ----------------------------------------------------------------------------- -log
def test_minus_log_with_nan_and_inf_to_zero():
    block = np.array([[[1.0, np.e, 0.5, 0.0, -1.0, np.nan]]], np.float32)
    got = minus_log(block.copy())
    assert np.allclose(got, [[[0.0, -1.0, math.log(2), 0.0, 0.0, 0.0]]], atol=1e-6)


# ----------------------------------------------------------------------------- Paganin
def test_wavelength_in_cm():
    assert phase.wavelength_cm(12.398419843) == pytest.approx(1e-8, rel=1e-9)  # 1 angstrom


def test_paganin_on_a_gaussian_matches_the_hankel_integral():
    """1 - A exp(-r^2 / 2s^2) through H = 1/(1 + c f^2): radial integral of its continuous Fourier transform."""
    n, sigma, amp = 96, 3.0, 0.5
    c = phase.coefficient(pixel_size=1e-4, dist=50.0, energy=20.0, alpha=0.1)
    assert c == pytest.approx(1.23984e-7 / 20 * 50 / (4 * np.pi * 0.1) / 1e-8, rel=1e-5)
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    block = (1 - amp * np.exp(-(x**2 + y**2) / (2 * sigma**2)))[None].astype(np.float32)
    got = phase.retrieve_phase(block.copy(), c, "tomopy", pad=phase.reach(c))[0]

    def bump(r: float) -> float:
        def f(rho: float) -> float:
            return (2 * np.pi * sigma**2 * np.exp(-2 * np.pi**2 * sigma**2 * rho**2) / (1 + c * rho**2)
                    * special.j0(2 * np.pi * rho * r) * 2 * np.pi * rho)

        return integrate.quad(f, 0, 0.5, limit=200, epsabs=1e-12)[0]

    for i, j in [(47, 47), (48, 52), (40, 60), (47, 70), (30, 30), (5, 50)]:
        want = 1 - amp * bump(math.hypot(x[i, j], y[i, j]))
        assert got[i, j] == pytest.approx(want, abs=2e-6)
    assert got.min() - block.min() > 0.04  # the filter did blur the bump


def test_generalised_paganin_solves_the_screened_poisson_equation():
    """u = H f with the generalised symbol means (1 - a * 5-point Laplacian) u = f, exactly, inside the image."""
    c = 30.0
    a = c / (4 * np.pi**2)
    f = RNG.uniform(0.3, 1.0, (2, 40, 50)).astype(np.float32)
    u = phase.retrieve_phase(f.copy(), c, "generalised", pad=phase.reach(c), workers=2).astype(np.float64)
    lap = u[:, 2:, 1:-1] + u[:, :-2, 1:-1] + u[:, 1:-1, 2:] + u[:, 1:-1, :-2] - 4 * u[:, 1:-1, 1:-1]
    assert np.abs(u[:, 1:-1, 1:-1] - a * lap - f[:, 1:-1, 1:-1]).max() < 2e-5
    assert np.abs(u - f).max() > 0.1


def test_paganin_keeps_a_constant_and_the_reach_bounds_the_kernel():
    block = np.full((1, 20, 30), 0.7, np.float32)
    for kind in phase.KINDS:
        assert np.allclose(phase.retrieve_phase(block.copy(), 5.0, kind, pad=4), 0.7, atol=1e-6)
    for c in [0.5, 5.0, 50.0]:
        n = 1024
        k = 2 * np.pi * np.fft.fftfreq(n)
        kernel = np.fft.ifft(1 / (1 + c / (4 * np.pi**2) * 4 * np.sin(k / 2) ** 2)).real  # row marginal, float64
        dist = np.minimum(np.arange(n), n - np.arange(n))
        reach = phase.reach(c)
        assert np.abs(kernel[dist > reach]).sum() <= 1e-7
        assert np.abs(kernel[dist > reach - 1]).sum() > 1e-7  # the smallest such overlap
    step = configured_steps(cfg(phase={"enabled": True}))[-1]
    assert step.needs.rows is FULL  # TomoPy's symbol: whole projections
    assert build_chain(cfg(phase={"enabled": True, "pad": True})).needs.rows is FULL
