"""Centre of rotation: automatic estimate on phantoms with a known axis, and the "try" series."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from algotom.rec.reconstruction import dfi_reconstruction
from pypdf import PdfReader

from tomosnake.recon.center import (
    centers_around,
    estimate_center,
    find_center,
    image_name,
    try_centers,
)
from tomosnake.config import TomoConfig
from tomosnake.phantom import SHEPP_LOGAN_3D, PhantomSpec, ground_truth, sinogram_block, write_scan
from tomosnake.stages.plan import make_plan
from tomosnake.io.scan import RawScan

TOLERANCE_PX = 0.5  # issue 8: automatic error <= 0.5 px


def noisy_sino(spec: PhantomSpec, rows: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """-log of Poisson-noisy counts (20000 in the open beam): (n_proj, rows, n_cols) and theta in degrees."""
    theta = spec.theta()
    att = sinogram_block(spec, theta, np.asarray(rows))
    counts = np.random.default_rng(seed).poisson(20000 * np.exp(-att))
    return -np.log(np.maximum(counts, 1) / 20000), theta


def filled(scale: float) -> tuple[tuple[float, ...], ...]:
    """The Shepp-Logan phantom enlarged in x, y: a sample wider than the detector (half acquisition)."""
    return tuple((r, a * scale, b * scale, c, x0 * scale, y0 * scale, z0, phi)
                 for r, a, b, c, x0, y0, z0, phi in SHEPP_LOGAN_3D)


@pytest.mark.parametrize(("n_cols", "offset"), [(128, 0.0), (128, 5.3), (128, -9.7), (160, 12.45), (101, -3.2)])
def test_180_scan_within_half_pixel(n_cols: int, offset: float) -> None:
    spec = PhantomSpec(n_proj=180, n_rows=8, n_cols=n_cols, center_offset=offset)
    sino, theta = noisy_sino(spec, [3])
    est = estimate_center(sino[:, 0], theta)
    assert abs(est.center - spec.center) <= TOLERANCE_PX, (est.center, spec.center)
    assert "find_center_vo" in est.method


def test_rows_averaged_and_angle_order_irrelevant() -> None:
    spec = PhantomSpec(n_proj=180, n_rows=8, n_cols=128, center_offset=-6.6)
    sino, theta = noisy_sino(spec, [2, 3, 4], seed=5)
    order = np.r_[0:180:2, 1:180:2]  # interlaced acquisition
    c = find_center(sino[order], theta[order] + 30.0)  # angles need not start at 0
    assert abs(c - spec.center) <= TOLERANCE_PX


@pytest.mark.parametrize(("n_cols", "offset"), [(128, 3.4), (160, -11.2), (128, 0.0)])
def test_360_full_field_within_half_pixel(n_cols: int, offset: float) -> None:
    spec = PhantomSpec(n_proj=360, n_rows=8, n_cols=n_cols, center_offset=offset, theta_end=360.0)
    sino, theta = noisy_sino(spec, [3], seed=2)
    est = estimate_center(sino[:, 0], theta)
    assert abs(est.center - spec.center) <= TOLERANCE_PX, (est.center, spec.center)
    assert "opposite projections" in est.method


@pytest.mark.parametrize(("n_cols", "axis_fraction"), [(128, 0.2), (128, 0.85), (200, 0.12), (200, 0.75)])
def test_360_half_acquisition_within_half_pixel(n_cols: int, axis_fraction: float) -> None:
    center = axis_fraction * (n_cols - 1)
    reach = max(center, n_cols - 1 - center) / (n_cols / 2)  # the widest radius the scan sees, in half widths
    spec = PhantomSpec(n_proj=360, n_rows=8, n_cols=n_cols, theta_end=360.0,
                       center_offset=center - (n_cols - 1) / 2, ellipsoids=filled(0.95 * reach / 0.92))
    sino, theta = noisy_sino(spec, [3], seed=3)
    c = find_center(sino[:, 0], theta)
    assert abs(c - spec.center) <= TOLERANCE_PX, (c, spec.center)


def test_360_without_opposite_pairs() -> None:
    """700 angles thinned to every 3rd (as a plan stage may read them): no angle has its exact opposite."""
    spec = PhantomSpec(n_proj=700, n_rows=8, n_cols=128, center_offset=-7.9, theta_end=360.0)
    sino, theta = noisy_sino(spec, [3], seed=6)
    c = find_center(sino[::3, 0], theta[::3])
    assert abs(c - spec.center) <= TOLERANCE_PX, (c, spec.center)


def test_short_scan_rejected() -> None:
    spec = PhantomSpec(n_proj=90, n_rows=4, n_cols=64, theta_end=90.0)
    sino, theta = noisy_sino(spec, [1])
    with pytest.raises(ValueError, match="180 or 360"):
        find_center(sino[:, 0], theta)


def test_centers_around_is_inclusive_and_absolute() -> None:
    np.testing.assert_allclose(centers_around(100.5, 1.0, 0.5), [99.5, 100.0, 100.5, 101.0, 101.5])
    assert image_name(67.8) == "center_00067.80.tiff"


def dfi(sino: np.ndarray, theta_deg: np.ndarray, center: float) -> np.ndarray:
    """Reference reconstruction (algotom DFI), in the same orientation as `ground_truth`."""
    return dfi_reconstruction(sino, center, angles=np.deg2rad(theta_deg), apply_log=False)


def test_try_series_labelled_with_absolute_centres(tmp_path) -> None:
    spec = PhantomSpec(n_proj=180, n_rows=8, n_cols=128, center_offset=4.3)
    sino, theta = noisy_sino(spec, [3])
    centers = centers_around(spec.center, 3.0, 1.0)  # 64.8 .. 70.8, the true 67.8 in the middle
    paths = try_centers(sino[:, 0], theta, centers, dfi, tmp_path / "try", title="phantom")
    tiffs, pdf = paths[:-1], paths[-1]
    assert [p.name for p in tiffs] == [image_name(c) for c in centers]
    assert sorted(tiffs) == tiffs  # names sort by value
    truth = ground_truth(spec, np.array([3]))[0]
    errors = []
    for c, path in zip(centers, tiffs, strict=True):
        img = tifffile.imread(path)
        np.testing.assert_allclose(img, dfi(sino[:, 0].astype(np.float32), theta, c), rtol=1e-5, atol=1e-6)
        errors.append(float(np.sqrt(np.mean((img - truth) ** 2))))
    # The image labelled with the true centre is the best one: the labels are absolute, not shifted.
    assert tiffs[int(np.argmin(errors))].name == image_name(spec.center)
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    for c in centers:
        assert f"centre {c:.2f} px" in text
    assert "absolute detector columns" in text
    assert not list((tmp_path / "try").glob(".*tmp*"))  # atomic writes left no temporaries


# ------------------------------------------------------------------ from a scan file (the plan's search)
class Reads:
    """Counts the frames a `RawScan` reads: projections, and flats or darks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.proj = self.refs = 0
        projections, frames_rows = RawScan.projections, RawScan._frames_rows

        def count_proj(scan, p0, p1, *args, **kwargs):
            self.proj += p1 - p0
            return projections(scan, p0, p1, *args, **kwargs)

        def count_refs(scan, *args, **kwargs):
            out = frames_rows(scan, *args, **kwargs)
            self.refs += out.shape[0]
            return out

        monkeypatch.setattr(RawScan, "projections", count_proj)
        monkeypatch.setattr(RawScan, "_frames_rows", count_refs)


@pytest.mark.parametrize(("theta_end", "n_cols", "offset", "noise"),
                         [(180, 128, 5.5, True), (180, 101, -7.3, True), (180, 128, 9.1, False),
                          (360, 128, 3.4, True), (360, 96, -2.2, False)])
def test_plan_search_reads_few_frames_and_finds_the_axis(tmp_path, monkeypatch, theta_end, n_cols, offset, noise):
    """Whatever the number of projections, the plan reads a few frames: here (exact opposite angles, or a
    180-degree seam) 2 * pairs + 2 projections at most, 2 flats and 2 darks; the axis within 0.25 px."""
    spec = PhantomSpec(n_proj=720, n_rows=4, n_cols=n_cols, center_offset=offset, theta_end=theta_end,
                       noise=noise, n_flat=12, n_dark=12, seed=4)
    path = write_scan(tmp_path / "scan.h5", spec)
    reads = Reads(monkeypatch)
    cfg = TomoConfig(input=[str(path)], threads=96)
    plan = make_plan(cfg, str(path), "scan")
    assert abs(plan.center - spec.center) <= 0.25, (plan.center, spec.center)
    assert plan.axis == plan.center
    assert reads.proj <= 2 * cfg.recon.center_search.pairs + 2
    assert reads.refs <= 2 * 2  # sampled flats and darks of the search (the flat check reads one of each apart)
    assert "opposite projections" in plan.center_method
