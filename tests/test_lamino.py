"""Laminography (issue 17): the tilted-ray phantom, the slab reconstruction against ground truth, the geometry's
sign, row windows, chunking invariance, and the checks that stop bad laminography input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tomosnake.config import ConfigError, ReconConfig, validate
from tomosnake.phantom_lamino import LaminoSpec, ground_truth, ray_sums, write_scan
from tomosnake.preflight import PreflightError, check
from tomosnake.recon import lamino
from tomosnake.stages.plan import PlanError, make_plan

HEIGHT = 16  # output slices of the 64 x 64 grid
# Reconstruction against the ground truth as laminography can measure it (`measurable_truth`): RMS error over
# the central 80 % of the field in units of the truth's range, measured 0.041 (20 deg) and 0.037 (35 deg) with
# noise; least-squares gain (truth on reconstruction) 0.947 and 0.966 (linear interpolation blurs edges).
TOLERANCE_RMS = 0.06
TOLERANCE_GAIN = 0.08
# Against the plain voxel truth the missing cone dominates (a flat disc is mostly low lateral frequency):
# measured 0.141 and 0.177.
TOLERANCE_RMS_PLAIN = 0.2


def cone_filtered(truth: np.ndarray, angle: float, pad: int = 16) -> np.ndarray:
    """The truth without laminography's missing cone: 3D frequencies with |k_z| tan(angle) > k_r are never
    measured (the projections' planes all lean by the angle), so no method recovers them."""
    t = np.pad(truth.astype(np.float64), pad)
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(n) for n in t.shape), indexing="ij")
    keep = np.hypot(kx, ky) >= np.abs(kz) * math.tan(math.radians(angle))
    return np.real(np.fft.ifftn(np.fft.fftn(t) * keep))[pad:-pad, pad:-pad, pad:-pad]


def measurable_truth(spec: LaminoSpec, height: int = HEIGHT) -> np.ndarray:
    """`cone_filtered` ground truth of ``height`` central slices, filtered on a taller volume (no wrap-around)."""
    tall = 3 * height
    return cone_filtered(ground_truth(spec, tall), spec.angle)[height:2 * height]


def rms_and_gain(rec: np.ndarray, ref: np.ndarray, truth_range: float) -> tuple[float, float]:
    n = rec.shape[-1]
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    inside = np.hypot(x, y) < 0.8 * n / 2
    a, b = rec[:, inside].ravel(), ref[:, inside].ravel()
    return float(np.sqrt(np.mean((a - b) ** 2)) / truth_range), float(1 / np.polyfit(a, b, 1)[0])


def noisy_transmission(spec: LaminoSpec, seed: int = 0) -> np.ndarray:
    """Flat/dark-normalised Poisson counts of the phantom (the beam and darks as `write_scan`'s)."""
    rng = np.random.default_rng(seed)
    flat = np.full((spec.n_rows, spec.n_cols), spec.flat_counts)
    counts = rng.poisson(flat * np.exp(-ray_sums(spec, spec.theta()))) + spec.dark_counts
    flats = rng.poisson(np.repeat(flat[None], spec.n_flat, 0)).mean(0) + spec.dark_counts
    darks = rng.poisson(np.full((spec.n_dark, spec.n_rows, spec.n_cols), spec.dark_counts)).mean(0)
    return ((counts - darks) / (flats - darks)).astype(np.float32)


def recon_cfg(angle: float, **extra) -> ReconConfig:
    return ReconConfig(lamino={"enabled": True, "angle": angle, "height": HEIGHT}, **extra)


# ------------------------------------------------------------------------------------------- phantom, geometry
def test_chord_of_a_sphere() -> None:
    """Each pixel's value is the chord 2 sqrt(r^2 - d^2) through a unit-density sphere, d its ray's distance."""
    spec = LaminoSpec(angle=30.0, n_proj=4, n_rows=24, n_cols=32, ellipsoids=((1.0, 6.0, 6.0, 6.0, 0, 0, 0, 0),))
    sums = ray_sums(spec, spec.theta())
    u = np.arange(spec.n_cols) - spec.center
    v = np.arange(spec.n_rows) - (spec.n_rows - 1) / 2
    d2 = v[:, None] ** 2 + u[None, :] ** 2  # the sphere sits at the origin, the rays cross the detector plane
    want = 2 * np.sqrt(np.clip(36.0 - d2, 0, None))
    for k in range(spec.n_proj):
        np.testing.assert_allclose(sums[k], want, atol=1e-9)


@pytest.mark.parametrize("angle", [20.0, 35.0])
def test_tilt_sign_is_tomocupys(angle: float) -> None:
    """TomocuPy's linerec kernel: v = v_c + z cos(a) - (x sin(theta) - y cos(theta)) sin(a). A small ball at
    x = 15 (y = z = 0) is seen at row v_c - 15 sin(a) at theta = 90 deg and v_c + 15 sin(a) at 270 deg; at
    0 deg its column is c + 15."""
    spec = LaminoSpec(angle=angle, n_proj=4, n_rows=40, n_cols=64, ellipsoids=((1.0, 2.0, 2.0, 2.0, 15, 0, 0, 0),))
    sums = ray_sums(spec, np.array([0.0, 90.0, 270.0]))
    v_c, shift = (spec.n_rows - 1) / 2, 15 * math.sin(math.radians(angle))

    def centroid(img: np.ndarray, axis: int) -> float:
        prof = img.sum(axis=1 - axis)
        return float((prof * np.arange(prof.size)).sum() / prof.sum())

    assert centroid(sums[0], 1) == pytest.approx(spec.center + 15, abs=0.2)
    assert centroid(sums[1], 0) == pytest.approx(v_c - shift, abs=0.2)
    assert centroid(sums[2], 0) == pytest.approx(v_c + shift, abs=0.2)


# ------------------------------------------------------------------------------------------- reconstruction
@pytest.mark.parametrize("angle", [20.0, 35.0])
def test_reconstruction_matches_truth(angle: float) -> None:
    """Noisy flat/dark-corrected data of a flat sample reconstruct to the measurable ground truth within
    TOLERANCE_RMS and TOLERANCE_GAIN; the same data reconstructed with the opposite tilt convention (rows
    mirrored) is clearly worse, so the sign is tested too."""
    spec = LaminoSpec(angle=angle, seed=4)
    trans = noisy_transmission(spec)
    cfg = recon_cfg(angle, filter_name="ramlak")
    geom = lamino.geometry(cfg, spec.n_rows, spec.n_cols, spec.center)
    rec = lamino.reconstruct_slab(trans, 0, spec.theta(), cfg, geom, 0, HEIGHT, False, 2)
    truth = ground_truth(spec, HEIGHT)
    span = float(truth.max() - truth.min())
    rms, gain = rms_and_gain(rec, measurable_truth(spec), span)
    assert rms < TOLERANCE_RMS and abs(gain - 1) < TOLERANCE_GAIN, (rms, gain)
    assert rms_and_gain(rec, truth, span)[0] < TOLERANCE_RMS_PLAIN
    mirrored = lamino.reconstruct_slab(trans[:, ::-1], 0, spec.theta(), cfg, geom, 0, HEIGHT, False, 2)[::-1]
    wrong, _ = rms_and_gain(mirrored, measurable_truth(spec), span)
    assert wrong > 1.5 * rms, (wrong, rms)


def test_chunked_equals_unchunked_and_threads() -> None:
    """Slabs of 3 slices, each from its own row window only, give the whole volume's bits; so do 1 or 2 threads."""
    spec = LaminoSpec(angle=25.0, n_proj=90, noise=False)
    trans = noisy_transmission(spec)
    cfg = recon_cfg(25.0, circ_mask={"enabled": True})
    geom = lamino.geometry(cfg, spec.n_rows, spec.n_cols, spec.center)
    theta = spec.theta()
    whole = lamino.reconstruct_slab(trans, 0, theta, cfg, geom, 0, HEIGHT, False, 1)
    parts, rows = [], 0
    for i0 in range(0, HEIGHT, 3):
        i1 = min(HEIGHT, i0 + 3)
        r0, r1 = lamino.row_window(geom, theta, i0, i1)
        rows += r1 - r0
        parts.append(lamino.reconstruct_slab(trans[:, r0:r1], r0, theta, cfg, geom, i0, i1, False, 2))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert rows < 6 * spec.n_rows  # the windows are smaller than the detector


def test_row_window_is_enough_and_tight() -> None:
    """Every row outside a slab's window may be anything (NaN here): the slab is unchanged. Dropping the
    window's first or last row changes it, so the window is not larger than the geometry needs."""
    rng = np.random.default_rng(1)
    n_proj, n_rows, n = 90, 48, 32
    theta = np.linspace(0, 360, n_proj, endpoint=False)
    data = rng.random((n_proj, n_rows, n)).astype(np.float32) + 0.5
    for mask in (False, True):
        cfg = ReconConfig(lamino={"enabled": True, "angle": 30.0, "height": 20}, minus_log=False,
                          circ_mask={"enabled": mask})
        geom = lamino.geometry(cfg, n_rows, n, (n - 1) / 2 + 1.3)
        i0, i1 = 7, 11
        r0, r1 = lamino.row_window(geom, theta, i0, i1)
        assert 0 < r0 < r1 < n_rows
        spoiled = np.full_like(data, np.nan)
        spoiled[:, r0:r1] = data[:, r0:r1]
        ref = lamino.reconstruct_slab(data, 0, theta, cfg, geom, i0, i1, True, 1)
        np.testing.assert_array_equal(lamino.reconstruct_slab(spoiled, 0, theta, cfg, geom, i0, i1, True, 1), ref)
        for lo, hi in ((r0 + 1, r1), (r0, r1 - 1)):
            cut = lamino.reconstruct_slab(data[:, lo:hi], lo, theta, cfg, geom, i0, i1, True, 1)
            assert not np.array_equal(cut, ref), (mask, lo, hi)


# --------------------------------------------------------------------------------------------------- plan
@pytest.fixture(scope="module")
def lamino_scan(tmp_path_factory: pytest.TempPathFactory):
    return write_scan(tmp_path_factory.mktemp("lamino") / "flat_sample.h5", LaminoSpec(angle=20.0, n_proj=90))


def lamino_config(scan, **extra) -> dict:
    base = {"input": [str(scan)], "recon": {"center": 31.5, "lamino": {"enabled": True, "angle": 20.0,
                                                                         "height": HEIGHT}}}
    for key, val in extra.items():
        base[key] = val if not isinstance(val, dict) else {**base.get(key, {}), **val}
    return base


def test_plan_slabs_and_row_windows(lamino_scan) -> None:
    """A budget that splits the height into several jobs: slabs tile the output, each job's rows are the
    windows of its loads, and they read fewer rows than a uniform split (every load reading every row)."""
    cfg = validate(lamino_config(lamino_scan, recon_memory_mb=321, overhead_mb=300, subchunks_per_job=2))
    plan = make_plan(cfg, str(lamino_scan), "flat_sample")
    assert plan.n_slices == HEIGHT and plan.j >= 2
    assert plan.sino_chunks[0][0] == 0 and plan.sino_chunks[-1][1] == HEIGHT
    assert all(a[1] == b[0] for a, b in zip(plan.sino_chunks, plan.sino_chunks[1:]))
    geom = lamino.geometry(cfg.recon, 40, 64, 31.5)
    lam = plan.lamino
    for j, window in enumerate(lam["row_windows"]):
        loads = [lamino.row_window(geom, plan.theta_deg, a, b) for a, b in plan.loads(j)]
        assert tuple(window) == (loads[0][0], loads[-1][1])
        assert lam["rows_read"][j] == sum(r1 - r0 for r0, r1 in loads)
    assert lam["read_amplification"] == pytest.approx(sum(lam["rows_read"]) / 40)
    assert lam["read_amplification"] < lam["uniform_amplification"]


def test_plan_refuses_a_budget_without_one_slice(lamino_scan) -> None:
    cfg = validate(lamino_config(lamino_scan, recon_memory_mb=317, overhead_mb=300))
    with pytest.raises(PlanError, match="config key 'recon_memory_mb': one laminography slice"):
        make_plan(cfg, str(lamino_scan), "flat_sample")


@pytest.mark.parametrize("angle", [0.0, 90.0, -20.0, 95.0])
def test_angle_outside_open_interval(angle: float) -> None:
    with pytest.raises(ConfigError, match=r"recon\.lamino\.angle.*strictly between 0 and 90"):
        validate({"recon": {"lamino": {"enabled": True, "angle": angle}}})


def test_preflight_one_line_per_bad_input(lamino_scan) -> None:
    """Each bad laminography input stops in the checks run before queueing, with one line naming its key."""
    bad = {
        "recon.lamino.angle": lamino_config(lamino_scan, recon={"lamino": {"enabled": True, "angle": 90.0}}),
        "recon.sino_360_to_180": lamino_config(lamino_scan, recon={"sino_360_to_180": {"enabled": True,
                                                                                       "old_center": 60.0}}),
        "recon_memory_mb": lamino_config(lamino_scan, recon_memory_mb=317, overhead_mb=300),
        "recon.backend": lamino_config(lamino_scan, recon={"backend": "algotom"}),
    }
    for key, raw in bad.items():
        with pytest.raises(PreflightError) as err:
            check(raw | {"disk_check": False})
        text = str(err.value)
        assert "\n" not in text and key in text, (key, text)


@pytest.mark.parametrize(("angle", "offset"), [(20.0, 3.3), (35.0, -5.2)])
def test_automatic_centre(tmp_path, angle: float, offset: float) -> None:
    """The plan's automatic centre of a laminography scan is within 0.5 px: tilted rays move features across
    rows, so the search runs on the sum of every row (a single row's sinogram is not mirror-symmetric)."""
    spec = LaminoSpec(angle=angle, n_proj=180, n_rows=48, n_cols=96, center_offset=offset)
    scan = write_scan(tmp_path / "scan.h5", spec)
    cfg = validate({"input": [str(scan)], "recon": {"lamino": {"enabled": True, "angle": angle, "height": HEIGHT}}})
    plan = make_plan(cfg, str(scan), "scan")
    assert abs(plan.center - spec.center) <= 0.5, (plan.center, spec.center)
    assert "sum of every detector row" in plan.center_method
