"""Reconstruction backends against the phantom's ground truth and against each other."""

from __future__ import annotations

import importlib.util
import re

import h5py
import numpy as np
import pytest

from tests.conftest import TOOTH
from tomosnake.config import ReconConfig
from tomosnake.phantom import PhantomSpec, ground_truth, sinogram_block
from tomosnake.recon import (
    BackendUnavailable,
    check_backend,
    gridrec,
    quality,
    reconstruct_block,
    require_backend,
)
from tomosnake.recon.backends import get_backend

N = 128
SPEC = PhantomSpec(n_cols=N, n_rows=8, n_proj=180, center_offset=2.7)
ROWS = np.array([3, 4])  # through the small ellipsoids: the hardest rows


@pytest.fixture(scope="module")
def padded():
    """Noise-free -log sinogram, edge-padded by N//4 as the chain's 'auto' does."""
    sino = sinogram_block(SPEC, SPEC.theta(), ROWS).astype(np.float32)
    pad = N // 4
    return np.pad(sino, ((0, 0), (0, 0), (pad, pad)), mode="edge"), SPEC.center + pad


@pytest.fixture(scope="module")
def truth():
    return ground_truth(SPEC, ROWS)


def _recon(backend, padded, algorithm="gridrec", filter_name="shepp"):
    sino, center = padded
    return get_backend(backend)(sino, np.deg2rad(SPEC.theta()), center, N, algorithm, filter_name, 2)


def test_default_backend_matches_ground_truth(padded, truth):
    # Measured: gain 1.02, RMSE 0.067 of the range, SSIM 0.84 at 128 px / 180 angles
    # (RMSE 0.049, SSIM 0.87 at 256 px / 360 angles; 0.025 at 1024 px, see benchmarks/recon.py).
    rec = _recon("gridrec", padded)
    assert rec.shape == (2, N, N) and rec.dtype == np.float32
    acc = quality.accuracy(rec, truth)
    assert 0.97 < acc["gain"] < 1.06
    assert acc["rmse"] < 0.075
    assert acc["ssim"] > 0.80


def test_default_backend_orientation_and_centre():
    """On a phantom with no symmetry, a mirrored, transposed or centre-shifted image scores worse."""
    lopsided = PhantomSpec(n_cols=N, n_rows=4, n_proj=180, center_offset=-3.2,
                           ellipsoids=((1.0, 0.5, 0.7, 0.9, 0.1, 0.05, 0.0, 20.0),
                                       (0.8, 0.15, 0.08, 0.9, 0.35, -0.4, 0.0, 0.0)))
    rows = np.array([2])
    theta = lopsided.theta()
    sino = sinogram_block(lopsided, theta, rows).astype(np.float32)
    truth = ground_truth(lopsided, rows)
    rec = gridrec.reconstruct(sino, np.deg2rad(theta), lopsided.center, "shepp", 2)
    good = quality.accuracy(rec, truth)["rmse"]
    assert good < 0.06
    for wrong in (rec[:, ::-1, :], rec[:, :, ::-1], np.swapaxes(rec, 1, 2)):
        assert quality.accuracy(np.ascontiguousarray(wrong), truth)["rmse"] > 3 * good
    shifted = gridrec.reconstruct(sino, np.deg2rad(theta), lopsided.center + 1.0, "shepp", 2)
    assert quality.accuracy(shifted, truth)["rmse"] > 1.3 * good


def test_default_backend_odd_slice_count_and_pairing(padded):
    """Slices travel in pairs; an odd count and a single slice must give the same images."""
    sino, center = padded
    theta = np.deg2rad(SPEC.theta())
    three = gridrec.reconstruct(np.concatenate([sino, sino[:, :1]], axis=1), theta, center, "shepp", 2, n_out=N)
    one = gridrec.reconstruct(sino[:, 1:2], theta, center, "shepp", 1, n_out=N)
    np.testing.assert_allclose(three[2], three[0], atol=1e-4 * np.ptp(three[0]))
    np.testing.assert_allclose(one[0], three[1], atol=1e-4 * np.ptp(one[0]))


@pytest.mark.parametrize("name", gridrec.FILTERS[1:])
def test_every_filter_reconstructs(padded, truth, name):
    # smoothing windows trade resolution for noise: looser bound, same orientation and scale class
    acc = quality.accuracy(_recon("gridrec", padded, filter_name=name), truth)
    assert acc["rmse"] < 0.13 and acc["ssim"] > 0.6


def test_unknown_filter_is_rejected(padded):
    with pytest.raises(ValueError, match="filter_name"):
        _recon("gridrec", padded, filter_name="blackman-harris")


def test_angle_weights_handle_uneven_and_full_turn():
    w = gridrec.angle_weights(np.deg2rad([0, 10, 30, 90]))
    np.testing.assert_allclose(w.sum(), np.pi)
    np.testing.assert_allclose(np.rad2deg(w), [(10 + 90) / 2, 15, 40, (60 + 90) / 2])
    full = gridrec.angle_weights(np.deg2rad(np.arange(0, 360, 2.0)))  # every direction twice
    np.testing.assert_allclose(full.sum(), np.pi)
    np.testing.assert_allclose(full[:90] + full[90:], np.deg2rad(2.0))


def test_agrees_with_algotom_fbp(padded, truth):
    """algotom's spatial-domain FBP (pip, independent code) as the reference."""
    ours = _recon("gridrec", padded, filter_name="ramlak")
    ref = _recon("algotom", padded, algorithm="fbp", filter_name="ramlak")
    # measured: both RMSE ~0.067 against the truth; against each other RMSE 0.022 of the
    # range, gain 0.93 (algotom's discrete ramp lifts edges a little more)
    mask = quality.fov_mask(N)
    fit = quality.accuracy(ours, ref)
    assert fit["rmse"] < 0.035 and 0.88 < fit["gain"] < 1.05
    assert abs(quality.accuracy(ref, truth)["rmse"] - quality.accuracy(ours, truth)["rmse"]) < 0.01
    assert np.corrcoef(ours[:, mask].ravel(), ref[:, mask].ravel())[0, 1] > 0.98  # measured 0.9895


def test_algotom_dfi_backend(padded, truth):
    acc = quality.accuracy(_recon("algotom", padded, algorithm="dfi", filter_name="none"), truth)
    assert acc["rmse"] < 0.13 and 0.85 < acc["gain"] < 1.1  # measured 0.115, 0.91 at this size


def test_missing_backend_names_its_env():
    if importlib.util.find_spec("tomopy") is not None:
        pytest.skip("tomopy is installed here")
    with pytest.raises(BackendUnavailable, match="envs/tomopy.yaml"):
        require_backend("tomopy")


def test_backend_checks_algorithm_and_filter():
    require_backend("gridrec", "gridrec", "parzen")
    with pytest.raises(BackendUnavailable, match="algorithm 'sirt'"):
        require_backend("gridrec", "sirt")
    with pytest.raises(BackendUnavailable, match="unknown backend"):
        require_backend("astra")


def _tomopy_missing() -> str | None:
    """Why TomoPy cannot run here (None: it imports, its compiled libraries too)."""
    from tomosnake.recon.backends import import_tomopy

    try:
        import_tomopy()
    except (ImportError, OSError) as err:
        return (f"TomoPy does not import ({type(err).__name__}): it is not on PyPI; it runs in the conda env "
                "envs/tomopy.yaml, or in a venv after .ci/tomopy.sh builds it from a TomoPy checkout")
    return None


needs_tomopy = pytest.mark.skipif(_tomopy_missing() is not None, reason=str(_tomopy_missing()))


@needs_tomopy
def test_tomopy_gridrec_matches_truth_and_default(padded, truth):
    # Measured at 128 px / 180 angles: RMSE 0.116, SSIM 0.72, gain 0.735 (the default: 0.068, 0.84, 1.02);
    # against the default RMSE 0.065. TomoPy grids without oversampling: see benchmarks/tomopy_parity.py.
    rec = _recon("tomopy", padded)
    acc = quality.accuracy(rec, truth)
    assert acc["rmse"] < 0.13 and acc["ssim"] > 0.68 and 0.65 < acc["gain"] < 0.85
    assert quality.accuracy(rec, _recon("gridrec", padded))["rmse"] < 0.08


@needs_tomopy
def test_tomopy_backend_is_plain_tomopy(padded):
    """Unpadded, the chain's tomopy backend gives TomoPy's own volume: same orientation, nothing flipped."""
    from tomosnake.recon.backends import import_tomopy

    sino, _ = padded
    theta = SPEC.theta()
    cfg = ReconConfig(backend="tomopy", minus_log=False, pad={"enabled": False}, filter_name="shepp")
    ours = reconstruct_block(sino[..., N // 4:-(N // 4)], theta, cfg, SPEC.center, True, 2)
    plain = import_tomopy().recon(sino[..., N // 4:-(N // 4)], np.deg2rad(theta), center=SPEC.center,
                                  algorithm="gridrec", filter_name="shepp", ncore=2)
    np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-6 * np.abs(plain).max())


@needs_tomopy
def test_filter_par_reaches_tomopy(padded):
    """Two butterworth cut-offs give two volumes, each TomoPy's own for that filter_par."""
    from tomosnake.recon.backends import import_tomopy

    sino, center = padded
    theta = SPEC.theta()
    recs = {}
    for par in ([0.1, 2.0], [0.45, 8.0]):
        cfg = ReconConfig(backend="tomopy", minus_log=False, pad={"enabled": False}, filter_name="butterworth",
                          filter_par=par)
        recs[par[0]] = reconstruct_block(sino, theta, cfg, center, True, 2)
        plain = import_tomopy().recon(sino, np.deg2rad(theta), center=center, algorithm="gridrec",
                                      filter_name="butterworth", filter_par=par, ncore=2)
        np.testing.assert_allclose(recs[par[0]], plain, rtol=0, atol=1e-6 * np.abs(plain).max())
    assert quality.accuracy(recs[0.1], recs[0.45])["rmse"] > 0.02


@needs_tomopy
def test_num_iter_reaches_tomopy(padded, truth):
    """SIRT with num_iter 20 is TomoPy's 20 iterations, and nearer the truth than its default single one."""
    from tomosnake.recon.backends import import_tomopy

    sino, center = padded[0][..., N // 4:-(N // 4)], SPEC.center
    theta = SPEC.theta()
    one = reconstruct_block(sino, theta, ReconConfig(backend="tomopy", algorithm="sirt", minus_log=False,
                                                     pad={"enabled": False}), center, True, 2)
    cfg = ReconConfig(backend="tomopy", algorithm="sirt", minus_log=False, pad={"enabled": False}, num_iter=20)
    twenty = reconstruct_block(sino, theta, cfg, center, True, 2)
    plain = import_tomopy().recon(sino, np.deg2rad(theta), center=center, algorithm="sirt", num_iter=20, ncore=2)
    np.testing.assert_allclose(twenty, plain, rtol=0, atol=1e-6 * np.abs(plain).max())
    assert quality.accuracy(twenty, truth)["rmse"] < 0.8 * quality.accuracy(one, truth)["rmse"]


@needs_tomopy
def test_reg_par_and_num_block_reach_tomopy(padded):
    """The algorithm's own options: ospml_hybrid's reg_par and num_block give TomoPy's own volume."""
    from tomosnake.recon.backends import import_tomopy

    sino, center = padded[0][..., N // 4:-(N // 4)], SPEC.center
    theta = SPEC.theta()
    opts = {"num_iter": 3, "reg_par": [0.5, 0.2], "num_block": 4}
    cfg = ReconConfig(backend="tomopy", algorithm="ospml_hybrid", minus_log=False, pad={"enabled": False}, **opts)
    ours = reconstruct_block(sino, theta, cfg, center, True, 2)
    plain = import_tomopy().recon(sino, np.deg2rad(theta), center=center, algorithm="ospml_hybrid", ncore=2, **opts)
    default = import_tomopy().recon(sino, np.deg2rad(theta), center=center, algorithm="ospml_hybrid", ncore=2,
                                    num_iter=3)
    np.testing.assert_allclose(ours, plain, rtol=0, atol=1e-6 * np.abs(plain).max())
    assert np.abs(plain - default).max() > 1e-3 * np.abs(default).max()


@needs_tomopy
def test_tomopy_without_its_libraries_stops_the_run_before_any_job(tmp_path):
    """A venv that has TomoPy's Python part but not its libtomo-*.so (this venv's packages seen from another
    venv, whose lib/ lacks them): the real workflow stops at preflight, one line naming the environment."""
    import site
    import subprocess
    import sys
    from pathlib import Path

    from tomosnake.cli import PROFILES
    from tomosnake.phantom import write_scan
    from tomosnake.workflow import SNAKEFILE

    bare = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    (purelib,) = (bare / "lib").glob("python3*/site-packages")
    (purelib / "borrowed.pth").write_text("\n".join([str(Path(__file__).resolve().parents[1]),
                                                      *site.getsitepackages()]) + "\n")
    scan = write_scan(tmp_path / "scan.h5", PhantomSpec(n_cols=32, n_rows=4, n_proj=32))
    out = tmp_path / "out"
    proc = subprocess.run([str(bare / "bin" / "python"), "-m", "snakemake", "--snakefile", str(SNAKEFILE),
                           "--profile", str(PROFILES / "local"), "--directory", str(tmp_path / "work"), "--config",
                           f"input={scan}", f"outdir={out}", "recon={backend: tomopy}"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tomosnake:")]
    assert proc.returncode == 1 and len(lines) == 1, proc.stdout + proc.stderr
    assert "envs/tomopy.yaml" in lines[0] and "compiled part does not load" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("tomocupy") is None,
                    reason="TomocuPy needs a CUDA GPU and its conda env envs/tomocupy.yaml")
def test_tomocupy_matches_truth(padded, truth):
    acc = quality.accuracy(_recon("tomocupy", padded, algorithm="fourierrec"), truth)
    assert acc["rmse"] < 0.09 and acc["ssim"] > 0.75




def test_real_tooth_agrees_with_algotom_fbp():
    """A real measurement (TomoPy's tooth sample data): default chain vs algotom's FBP."""
    from algotom.prep.calculation import find_center_vo

    with h5py.File(TOOTH, "r") as f:
        raw = f["exchange/data"][...].astype(np.float32)
        flat = f["exchange/data_white"][...].mean(axis=0)
        dark = f["exchange/data_dark"][...].mean(axis=0)
        theta = f["exchange/theta"][...]
    trans = (raw - dark) / np.maximum(flat - dark, 1e-6)
    center = find_center_vo(-np.log(np.clip(trans[:, 0], 1e-6, None)))
    ours = reconstruct_block(trans, theta, ReconConfig(), center, False, 2)
    ref = reconstruct_block(trans, theta, ReconConfig(backend="algotom", algorithm="fbp", filter_name="none"),
                            center, False, 2)
    mask = quality.fov_mask(ours.shape[-1], 0.9)
    assert np.corrcoef(ours[:, mask].ravel(), ref[:, mask].ravel())[0, 1] > 0.98  # measured 0.989


def test_default_backend_honours_filter_par(padded):
    """filter_par has TomoPy's formulas (filters.h) in the default backend too: hann [0.5] (TomoPy's default)
    is zero at f = 0.25 and changes the volume; hann [1], parzen [0.5] and butterworth [0.5, 8] are the
    default backend's windows."""
    f = np.abs(np.fft.fftfreq(256))
    np.testing.assert_allclose(gridrec.filter_response("hann", 256, [0.5])[f == 0.25], 0.0, atol=1e-12)
    np.testing.assert_allclose(gridrec.filter_response("hann", 256, [1.0]), gridrec.filter_response("hann", 256))
    for name, par in (("parzen", [0.5]), ("butterworth", [0.5, 8])):
        np.testing.assert_allclose(gridrec.filter_response(name, 256, par), gridrec.filter_response(name, 256))
    sino, center = padded
    cut = reconstruct_block(sino, SPEC.theta(), ReconConfig(minus_log=False, pad={"enabled": False},
                                                           filter_name="hann", filter_par=[0.5]), center, True, 2)
    full = reconstruct_block(sino, SPEC.theta(), ReconConfig(minus_log=False, pad={"enabled": False},
                                                            filter_name="hann"), center, True, 2)
    assert quality.accuracy(cut, full)["rmse"] > 0.01


@pytest.mark.parametrize(("recon", "fragment"), [
    ({"filter_name": "shepp", "filter_par": [0.3]}, "recon.filter_par: filter 'shepp' takes no parameters"),
    ({"filter_name": "butterworth", "filter_par": [0.3]}, "takes 2 value(s) ([c, order])"),
    ({"filter_name": "hann", "filter_par": [0.0]}, "c must be positive"),
])
def test_filter_par_a_filter_cannot_use_is_refused(recon, fragment):
    from tomosnake.config import ConfigError, validate

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate({"recon": recon})


@pytest.mark.parametrize(("recon", "fragment"), [
    ({"num_iter": 10}, "recon.num_iter: backend 'gridrec' with algorithm 'gridrec' cannot use it"),
    ({"backend": "tomopy", "num_iter": 10}, "recon.num_iter: backend 'tomopy' with algorithm 'gridrec'"),
    ({"backend": "tomopy", "algorithm": "sirt", "filter_name": "parzen", "filter_par": [0.3]},
     "recon.filter_par: backend 'tomopy' with algorithm 'sirt' cannot use it (it takes num_iter)"),
    ({"backend": "tomopy", "algorithm": "sirt", "reg_par": [0.1]}, "recon.reg_par: backend 'tomopy'"),
    ({"backend": "tomopy", "algorithm": "tikh", "reg_par": [0.1]}, "recon.reg_par: tomopy's tikh reads 2 value(s)"),
    ({"backend": "algotom", "filter_name": "hann", "filter_par": [0.3]}, "recon.filter_par: backend 'algotom'"),
    ({"backend": "tomocupy", "filter_name": "parzen", "filter_par": [0.3]}, "recon.filter_par: backend 'tomocupy'"),
])
def test_a_parameter_the_backend_cannot_honour_is_refused_before_any_job(tmp_path, recon, fragment):
    """At preflight (what the Snakefile runs before queueing anything), in one line naming the key."""
    from tomosnake import preflight
    from tomosnake.phantom import write_scan

    scan = write_scan(tmp_path / "scan.h5", PhantomSpec(n_cols=32, n_rows=4, n_proj=32))
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check({"input": [str(scan)], "outdir": str(tmp_path / "out"), "recon": recon})
    text = str(err.value)
    assert "\n" not in text.strip() and fragment in text, text


def test_a_parameter_the_backend_honours_passes():
    require_backend("gridrec", "gridrec", "butterworth", {"filter_par": [0.3, 4]})
    check_backend("tomopy", "osem", "none", {"num_iter": 5, "num_block": 4})
    check_backend("tomopy", "tv", "none", {"num_iter": 5, "reg_par": [0.1]})
