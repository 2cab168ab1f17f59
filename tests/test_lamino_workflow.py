"""Laminography through the real workflow (issue 17) and the GPU path from a host without TomocuPy (issue 13.8)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests import workflow
from tests.conftest import read_only
from tests.test_lamino import (
    TOLERANCE_GAIN,
    TOLERANCE_RMS,
    measurable_truth,
    rms_and_gain,
)
from tomosnake import placement
from tomosnake.config import validate
from tomosnake.phantom_lamino import LaminoSpec, ground_truth, write_scan
from tomosnake.preflight import PreflightError, check
from tomosnake.recon import BackendUnavailable, lamino
from tomosnake.stages.conversion_range import frc_rows, resolution
from tomosnake.stages.plan import Plan, make_plan
from tomosnake.stages.recon_chunk import recon_chunk
from tomosnake.workflow import PROFILES

SPEC = LaminoSpec(angle=20.0, n_proj=90, seed=2)
HEIGHT = 16
HAS_TOMOCUPY = importlib.util.find_spec("tomocupy") is not None


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("raw") / "flat_sample.h5", SPEC))


def config(scan: Path, outdir: Path, **recon) -> dict:
    """Recon jobs of one load each (the budget holds a few slices and their rows), no report, no cleanup."""
    return {"input": [str(scan)], "outdir": str(outdir), "memory_mb": 600, "recon_memory_mb": 321,
            "overhead_mb": 300, "subchunks_per_job": 1, "threads": 1, "report": False, "cleanup": False,
            "recon": {"center": SPEC.center, "circ_mask": {"enabled": True},
                      "lamino": {"enabled": True, "angle": SPEC.angle, "height": HEIGHT}} | recon,
            "center_try": {"width": 0.5, "step": 0.5}, "lamino_try": {"width": 0.5, "step": 0.5}}


# ------------------------------------------------------------------------------------------ GPU path (13.8)
def test_placement_of_reconstructing_rules() -> None:
    """With TomocuPy every rule that runs the backend gets the GPU partition and a GPU; conversion_range
    only when it reconstructs a sample (conversion on, not 'manual'); everything else the CPU partition."""
    gpu = validate({"recon": {"backend": "tomocupy"}, "slurm": {"gpu_partition": "g", "cpu_partition": "c"}})
    for rule in ("recon_chunk", "try_center_scan", "try_lamino_scan"):
        assert placement.slurm_resources(gpu, rule) == {"slurm_partition": "g", "gpu": 1}
    assert placement.slurm_resources(gpu, "conversion_range") == {"slurm_partition": "c"}
    sampled = gpu.model_copy(update={"recon": gpu.recon.model_copy(update={"convert": gpu.recon.convert.model_copy(
        update={"enabled": True})})})
    assert placement.slurm_resources(sampled, "conversion_range") == {"slurm_partition": "g", "gpu": 1}
    for rule in ("preprocess_chunk", "combine", "report"):
        assert placement.slurm_resources(sampled, rule) == {"slurm_partition": "c"}
    cpu = validate({"slurm": {"account": "a1", "qos": "q"}})
    assert placement.slurm_resources(cpu, "recon_chunk") == {"slurm_partition": "cpu", "slurm_account": "a1",
                                                             "qos": "q"}


@pytest.mark.skipif(HAS_TOMOCUPY, reason="checks a host without TomocuPy; this one has it")
def test_tomocupy_run_gets_its_frc_without_a_gpu(scan, tmp_path) -> None:
    """conversion_range goes to the CPU partition unless it samples a conversion range, so its resolution
    estimate must not run the GPU backend (it did: BackendUnavailable on every TomocuPy run)."""
    cfg = validate(config(scan, tmp_path / "out", backend="tomocupy"))
    plan = make_plan(cfg, str(scan), "flat_sample")
    assert placement.slurm_resources(cfg, "conversion_range") == {"slurm_partition": cfg.slurm.cpu_partition}
    res = resolution(scan, plan, cfg)  # the raw file read as pre-processed data: a smoke test of the path
    assert len(res["frc"]) > 1 and res["rows"] == frc_rows(plan)


@pytest.mark.skipif(HAS_TOMOCUPY, reason="checks a host without TomocuPy; this one has it")
def test_tomocupy_plans_here_and_fails_in_the_job(scan, tmp_path) -> None:
    """Without TomocuPy here, preflight refuses a run whose jobs use this Python (no --sdm), and passes one whose
    jobs get their conda env; the plan passes; a job that reconstructs without it stops at its start with a
    message naming the package, the job's Python and where TomocuPy comes from."""
    raw = config(scan, tmp_path / "out", backend="tomocupy")
    with pytest.raises(PreflightError, match=r"config key 'recon.backend': backend 'tomocupy' needs the Python "
                       r"package 'tomocupy'.*without --sdm conda"):
        check(raw, jobs_share_env=True)
    check(raw)  # the jobs get their conda env (--sdm conda): nothing to check here
    cfg = validate(raw)
    plan = make_plan(cfg, str(scan), "flat_sample")
    with pytest.raises(BackendUnavailable, match=r"needs the Python package 'tomocupy'.*job's environment.*"
                       r"envs/tomocupy\.yaml"):
        recon_chunk(tmp_path / "absent.vds.h5", plan, 0, cfg, {"enabled": False, "dtype": "float32"},
                    tmp_path / "recon_0.h5")
    assert not (tmp_path / "recon_0.h5").exists()


def stand_in_tomocupy(tmp: Path) -> dict[str, str]:
    """The environment with an importable, empty ``tomocupy`` package and a ``tomocupy`` command that fails:
    where the jobs run in this Python (no --sdm), the workflow refuses a backend it cannot find; the audit
    of placement below runs no reconstruction, so a stand-in install is all it needs."""
    (tmp / "site" / "tomocupy").mkdir(parents=True)
    (tmp / "site" / "tomocupy" / "__init__.py").write_text("")
    (tmp / "bin").mkdir()
    (tmp / "bin" / "tomocupy").write_text("#!/bin/sh\nexit 1\n")
    (tmp / "bin" / "tomocupy").chmod(0o755)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp / "site"), env.get("PYTHONPATH")) if p)
    env["PATH"] = f"{tmp / 'bin'}{os.pathsep}{env['PATH']}"
    return env


@pytest.mark.slow
@pytest.mark.skipif(HAS_TOMOCUPY, reason="checks a host without TomocuPy; this one has it")
def test_audit_sends_reconstruction_to_the_gpu_and_shows_row_windows(scan, tmp_path) -> None:
    """`tomosnake audit` of a laminography scan with TomocuPy on this host (no TomocuPy): exit 0; the four
    reconstructing rules on partition gpu with one GPU, the rest on cpu without; per recon job its slab
    and detector rows, and the read amplification, as in plan.json."""
    raw = config(scan, tmp_path / "out", backend="tomocupy", convert={"enabled": True, "dtype": "uint8"})
    cfg_file = tmp_path / "scan.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", "all", "try_center", "try_lamino",
                           "--profile", str(PROFILES / "maxiv"), "--configfile", str(cfg_file)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False, env=stand_in_tomocupy(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {}
    for line in proc.stdout.splitlines():
        cells = line.split()
        if len(cells) >= 8 and cells[1].isdigit() and cells[2] == "SLURM":
            rows[cells[0]] = (cells[3], cells[7])  # partition, gpu
    gpu_rules = {"conversion_range", "recon_chunk", "try_center_scan", "try_lamino_scan"}
    assert {r: rows[r] for r in gpu_rules} == {r: ("gpu", "1") for r in gpu_rules}, proc.stdout
    assert all(v == ("cpu", "0") for r, v in rows.items() if r not in gpu_rules), proc.stdout
    plan = Plan.read(tmp_path / "out" / "flat_sample" / "plan.json")
    assert plan.j >= 2
    for j, ((i0, i1), (r0, r1), n) in enumerate(zip(plan.sino_chunks, plan.lamino["row_windows"],
                                                    plan.lamino["rows_read"], strict=True)):
        assert any(line.split() == [str(j), f"{i0}-{i1}", f"{r0}-{r1}", str(n)] for line in proc.stdout.splitlines())
    assert (f"read amplification (rows read / {SPEC.n_rows} detector rows): "
            f"{plan.lamino['read_amplification']:.2f} with geometric windows, "
            f"{plan.lamino['uniform_amplification']:g} for a uniform split") in proc.stdout


# ------------------------------------------------------------------------------------------ CPU workflow (17)
@pytest.mark.slow
def test_workflow_reconstructs_slabs_and_trial_series(scan, tmp_path) -> None:
    """plan -> preprocessing -> two recon jobs, each reading its row window -> combine, with try_center and
    try_lamino in the same run: the volume equals one slab over all rows (reconstructed here from the raw
    file) within float tolerance and matches the measurable truth; the series are named by absolute value."""
    raw = config(scan, tmp_path / "out")
    workflow.run(tmp_path, raw, "all", "try_center", "try_lamino", "--cores", "2")
    out = tmp_path / "out" / "flat_sample"
    plan = Plan.read(out / "plan.json")
    assert plan.j >= 2 and all(r1 - r0 < SPEC.n_rows for r0, r1 in plan.lamino["row_windows"])
    vol = workflow.volume(out / "flat_sample_recon.h5")
    with h5py.File(scan, "r") as f:
        dark = f["exchange/data_dark"][()].mean(axis=0)
        flat = f["exchange/data_white"][()].mean(axis=0)
        trans = ((f["exchange/data"][()] - dark) / (flat - dark)).astype(np.float32)
    cfg = validate(raw).recon
    geom = lamino.geometry(cfg, SPEC.n_rows, SPEC.n_cols, SPEC.center)
    whole = lamino.reconstruct_slab(trans, 0, SPEC.theta(), cfg, geom, 0, HEIGHT, False, 1)
    np.testing.assert_allclose(vol, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    truth = ground_truth(SPEC, HEIGHT)
    rms, gain = rms_and_gain(vol, measurable_truth(SPEC), float(truth.max() - truth.min()))
    assert rms < TOLERANCE_RMS and abs(gain - 1) < TOLERANCE_GAIN, (rms, gain)
    centres = sorted(p.name for p in (out / "try_center").glob("*.tiff"))
    assert centres == [f"center_{c:08.2f}.tiff" for c in SPEC.center + np.array([-0.5, 0, 0.5])]
    tilts = sorted(p.name for p in (out / "try_lamino").glob("*.tiff"))
    assert tilts == ["lamino_019.50.tiff", "lamino_020.00.tiff", "lamino_020.50.tiff"]
    assert (out / "try_center" / "contact_sheet.pdf").is_file() and (out / "try_lamino" / "contact_sheet.pdf").is_file()


@pytest.mark.skipif(not HAS_TOMOCUPY, reason="TomocuPy needs a CUDA GPU and its conda env envs/tomocupy.yaml; "
                    "this host has neither")
def test_tomocupy_lamino_matches_truth(scan) -> None:
    """TomocuPy's laminography (linerec) on the phantom's rows, through the backend's command line, against
    the measurable truth; its slices lie within half a voxel of ours, hence the looser tolerance."""
    from tomosnake.recon.backends import run_tomocupy_lamino

    with h5py.File(scan, "r") as f:
        dark = f["exchange/data_dark"][()].mean(axis=0)
        flat = f["exchange/data_white"][()].mean(axis=0)
        proj = -np.log(np.clip((f["exchange/data"][()] - dark) / (flat - dark), 1e-6, None)).astype(np.float32)
    geom = lamino.Geometry(SPEC.angle, SPEC.n_rows, SPEC.n_cols, HEIGHT, SPEC.center)
    rec = run_tomocupy_lamino(proj, 0, SPEC.theta(), SPEC.angle, SPEC.center, geom.v_center,
                              geom.z(np.arange(HEIGHT)), SPEC.n_cols, "linerec", "shepp")
    truth = ground_truth(SPEC, HEIGHT)
    rms, gain = rms_and_gain(rec, measurable_truth(SPEC), float(truth.max() - truth.min()))
    assert rms < 2 * TOLERANCE_RMS and abs(gain - 1) < 2 * TOLERANCE_GAIN, (rms, gain)
