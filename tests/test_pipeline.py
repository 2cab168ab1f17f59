"""End to end: the real Snakefile, local executor, on a generated phantom and on the real tooth scan."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from pypdf import PdfReader

from tests.conftest import TOOTH, read_only
from tests.workflow import RULES, fit_error, nothing_to_do, run, scheduled_rules, volume
from tomosnake.phantom import PhantomSpec, ground_truth, write_scan

pytestmark = pytest.mark.slow

SPEC = PhantomSpec(n_proj=180, n_rows=40, n_cols=96, center_offset=2.0, seed=3)
# Two budgets (MB, with no interpreter overhead reserved) that give different k and j:
# 18.5 MB -> k=2, j=14; 20 MB -> k=1, j=7 (16 MB of each is a fixed allowance for caches).
BUDGET_A, BUDGET_B = 18.5, 20.0
# Noisy 96-px phantom: normalised RMSE after a gain/offset fit inside 90 % of the field of view, with
# Shepp-Logan's window (the default, cosine, smooths features a few pixels wide more: 0.082).
MAX_NRMSE = 0.08


def _config(scan: Path, outdir: Path, budget: float, **extra) -> dict:
    return {"input": [str(scan)], "outdir": str(outdir), "memory_mb": budget, "overhead_mb": 0,
            "subchunks_per_job": 1, "threads": 1, "cleanup": False, "recon": {"filter_name": "shepp"}, **extra}


@pytest.fixture(scope="module")
def phantom_scan(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("raw") / "phantom scan.h5", SPEC))


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, phantom_scan) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("run_a")
    cfg = _config(phantom_scan, work / "out", BUDGET_A)
    run(work, cfg)
    return work, cfg


def _scan_dir(cfg: dict) -> Path:
    return Path(cfg["outdir"]) / "phantom_scan"


def test_every_rule_ran_and_split_the_scan(run_a):
    _, cfg = run_a
    d = _scan_dir(cfg)
    plan = json.loads((d / "plan.json").read_text())
    assert plan["k"] > 1 and plan["j"] > 1, (plan["k"], plan["j"])
    logs = {p.name for p in (d / "logs").iterdir()}
    assert {"plan.log", "vds_merge.log", "combine.log", "report.log", "conversion_range.log"} <= logs
    assert {f"preprocess_{k}.log" for k in range(plan["k"])} <= logs
    assert {f"recon_{j}.log" for j in range(plan["j"])} <= logs


def test_jobs_ran_in_snakemakes_process(run_a):
    """A local run starts no interpreter per job (`tomosnake.jobs`): every job's timing record is one of a
    job run inside Snakemake's process (no start-up phase; the process's memory at the job's start), with
    the job's own figures: CPU seconds within its wall time x threads, peak memory, threads used."""
    _, cfg = run_a
    records = [json.loads(p.read_text()) for p in (_scan_dir(cfg) / "logs").glob("*.timing.json")]
    assert len(records) >= 7
    assert all("startup" not in r["phases"] and r["start_rss_mb"] is not None for r in records), records
    for r in records:
        wall = r["end"] - r["start"]
        assert 0 <= r["cpu_s"] <= 1.1 * wall * os.cpu_count() + 0.05, r
        assert 50 < r["start_rss_mb"] <= r["max_rss_mb"] < 4096, r
        assert 1 <= r["threads_used"] <= max(r["threads"], 2) + 2, r


def test_vds_is_small_and_reads_like_the_chunks(run_a):
    _, cfg = run_a
    d = _scan_dir(cfg)
    chunks = sorted((d / "preproc").glob("chunk_*.h5"), key=lambda p: int(p.stem.split("_")[1]))
    parts = [volume(p) for p in chunks]
    vds = d / "preproc.vds.h5"
    assert vds.stat().st_size < sum(p.nbytes for p in parts) / 10
    with h5py.File(vds, "r") as f:
        assert f["exchange/data"].is_virtual
        np.testing.assert_array_equal(f["exchange/data"][()], np.concatenate(parts))
        np.testing.assert_allclose(f["exchange/theta"][()], SPEC.theta())


def test_volume_matches_ground_truth(run_a):
    _, cfg = run_a
    vol = volume(_scan_dir(cfg) / "phantom_scan_recon.h5")
    truth = ground_truth(SPEC)
    assert vol.shape == truth.shape
    nrmse, gain = fit_error(vol, truth)
    assert nrmse < MAX_NRMSE, nrmse
    assert 0.9 < gain < 1.1, gain  # attenuation per pixel, not arbitrary units


def test_report_renders(run_a, tmp_path):
    _, cfg = run_a
    pdf = _scan_dir(cfg) / "phantom_scan_report.pdf"
    assert len(PdfReader(pdf).pages) >= 2
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")], check=True)
    from PIL import Image

    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("L"), dtype=float)
    assert page.std() > 20  # images on the page, not a blank sheet


def test_finished_run_has_nothing_to_do(run_a):
    work, cfg = run_a
    assert nothing_to_do(work, cfg)


def test_recon_parameter_change_reruns_only_reconstruction(run_a):
    work, cfg = run_a
    changed = cfg | {"recon": {"filter_name": "hann"}}
    assert scheduled_rules(work, changed) == {"conversion_range", "recon_chunk", "combine", "report"}


def test_other_budget_gives_other_chunks_same_volume(run_a, phantom_scan, tmp_path):
    _, cfg_a = run_a
    cfg_b = _config(phantom_scan, tmp_path / "out", BUDGET_B)
    run(tmp_path, cfg_b)
    plan_a = json.loads((_scan_dir(cfg_a) / "plan.json").read_text())
    plan_b = json.loads((_scan_dir(cfg_b) / "plan.json").read_text())
    assert (plan_a["k"], plan_a["j"]) != (plan_b["k"], plan_b["j"])
    a, b = volume(_scan_dir(cfg_a) / "phantom_scan_recon.h5"), volume(_scan_dir(cfg_b) / "phantom_scan_recon.h5")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(a).max())


def test_cleanup_leaves_nothing_to_recompute(run_a, tmp_path):
    work, cfg = run_a
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    cfg = cfg | {"outdir": str(copy / "out"), "cleanup": True}
    proc = run(copy, cfg)
    assert "rule cleanup" in proc.stdout + proc.stderr
    d = copy / "out" / "phantom_scan"
    assert not list((d / "preproc").glob("chunk_*.h5"))
    assert not (d / "preproc.vds.h5").exists()
    assert (d / "phantom_scan_recon.h5").exists()
    assert nothing_to_do(copy, cfg)


def test_tooth_and_phantom_in_one_invocation(tmp_path, phantom_scan):
    """The real tooth scan (181 x 2 x 640) and the phantom in one run, each in its own work directory:
    all rules, k, j > 1 for the tooth, its volume agreeing with algotom, the phantom's with ground truth."""
    from algotom.rec.reconstruction import dfi_reconstruction

    scan = shutil.copy(TOOTH, tmp_path / "tooth.h5")
    read_only(Path(scan))
    # Reconstructing one 640-px slice needs ~34 MB, two ~39 MB; preprocessing gets a small budget so k > 1.
    cfg = _config(Path(scan), tmp_path / "out", 16.5, recon_memory_mb=36.0, cleanup=True)
    cfg["input"].append(str(phantom_scan))
    run(tmp_path, cfg)
    d = tmp_path / "out" / "tooth"
    plan = json.loads((d / "plan.json").read_text())
    assert plan["k"] > 1 and plan["j"] > 1
    assert {f"{r}.log" for r in ("plan", "vds_merge", "combine", "report", "cleanup")} <= {
        p.name for p in (d / "logs").iterdir()}
    assert RULES[-1] == "cleanup" and (d / "cleanup.done").exists()
    vol = volume(d / "tooth_recon.h5")
    assert vol.shape == (2, 640, 640) and np.isfinite(vol).all()
    # Independent reference: algotom's DFI on the same flat-field-corrected, -log sinogram and centre.
    with h5py.File(TOOTH) as f:
        proj = f["exchange/data"][:, 1, :].astype(np.float64)
        flat, dark = f["exchange/data_white"][:, 1, :].mean(0), f["exchange/data_dark"][:, 1, :].mean(0)
        theta = np.deg2rad(f["exchange/theta"][()])
    sino = -np.log(np.clip((proj - dark) / np.maximum(flat - dark, 1e-6), 1e-6, None))
    center = plan["center"]
    ref = dfi_reconstruction(sino, center, angles=theta, apply_log=False)
    nrmse, _ = fit_error(vol[1], ref, radius=0.8)
    assert nrmse < 0.1, nrmse
    # The other scan of the run: its own plan, volume and report, untouched by the tooth's.
    other = tmp_path / "out" / "phantom_scan"
    assert json.loads((other / "plan.json").read_text())["input"] == str(phantom_scan)
    assert (other / "cleanup.done").exists() and (other / "phantom_scan_report.pdf").exists()
    nrmse, gain = fit_error(volume(other / "phantom_scan_recon.h5"), ground_truth(SPEC))
    assert nrmse < MAX_NRMSE and 0.9 < gain < 1.1, (nrmse, gain)


def test_try_center_writes_a_series_around_the_centre(run_a):
    """`snakemake try_center` reuses the preprocessed data: one TIFF per absolute centre + a contact sheet."""
    import tifffile

    work, cfg = run_a
    cfg = cfg | {"center_try": {"width": 2.0, "step": 0.5}}
    proc = run(work, cfg, "try_center")
    assert "preprocess_chunk" not in proc.stdout + proc.stderr
    d = _scan_dir(cfg) / "try_center"
    centre = json.loads((_scan_dir(cfg) / "plan.json").read_text())["center"]
    tiffs = sorted(d.glob("center_*.tiff"))
    assert [float(p.stem.split("_")[1]) for p in tiffs] == pytest.approx(centre + np.arange(-2, 2.5, 0.5))
    # The slice at the true axis is the sharpest of the series (largest gradient energy).
    sharp = [np.sum(np.diff(tifffile.imread(p), axis=0) ** 2) for p in tiffs]
    assert abs(float(tiffs[int(np.argmax(sharp))].stem.split("_")[1]) - SPEC.center) <= 0.5
    assert len(PdfReader(d / "contact_sheet.pdf").pages) == 1


def test_demo_command(tmp_path):
    """README command 1's last step, `tomosnake demo`: it splits the scan, prints where the outputs are,
    and the volume matches the demo phantom."""
    from tomosnake.cli import DEMO_SPEC

    proc = subprocess.run([sys.executable, "-m", "tomosnake.cli", "demo", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = dict(re.findall(r"^  (volume|report): (.+)$", proc.stdout, re.MULTILINE))
    assert Path(printed["volume"]).is_file() and Path(printed["report"]).is_file()
    plan = json.loads((Path(printed["volume"]).parent / "plan.json").read_text())
    assert plan["k"] > 1 and plan["j"] > 1, (plan["k"], plan["j"])
    nrmse, gain = fit_error(volume(Path(printed["volume"])), ground_truth(DEMO_SPEC))
    assert nrmse < MAX_NRMSE and 0.9 < gain < 1.1, (nrmse, gain)
