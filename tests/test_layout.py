"""The design card's top level (Snakefile, rules/, scripts/, config/, profiles/, envs/ at the repository root): plain
``snakemake`` from the root finds the workflow, runs every job in its own process without a profile, and a
Snakemake ``module`` deployment of it runs as written (no extra flags)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tomosnake import workflow

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT / "tests" / "data" / "tooth.h5"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_the_workflow_is_at_the_top_level():
    assert workflow.WORKFLOW_DIR == ROOT  # a checkout (editable install): the repository's own folders
    for name in workflow.LAYOUT:
        assert (ROOT / name).exists(), name
        assert not (ROOT / "tomosnake" / "workflow" / name).exists(), f"{name} is still inside the package"
    rules = {p.stem for p in (ROOT / "rules").glob("*.smk")}
    assert {"plan", "preprocess", "recon", "combine", "report", "cleanup"} <= rules
    assert callable(workflow.job_function("plan"))


def test_dry_run_from_the_root_finds_the_snakefile(tmp_path: Path):
    done = subprocess.run([*SNAKEMAKE, "-n", "--config", f"input={SCAN}", f"outdir={tmp_path / 'out'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "plan" in done.stdout + done.stderr


def _job_pids(out: Path) -> set[int]:
    """The process id of every job, from the jobs' own logs."""
    pids = {int(m) for log in out.glob("*/logs/*.log") for m in re.findall(r" pid (\d+): ", log.read_text())}
    assert pids, sorted(out.rglob("*"))
    return pids


def _run(cmd: list[str], cwd: Path) -> set[int]:
    """Run ``cmd`` (a snakemake without any profile) to the end; the pids of the processes that ran its jobs,
    less the run's own."""
    env = {**os.environ, "XDG_CONFIG_HOME": str(cwd / "xdg")}  # no user profile either
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    return _job_pids(cwd / "out") - {proc.pid}


@pytest.mark.slow
def test_plain_snakemake_runs_every_job_in_its_own_process(tmp_path: Path):
    """No profile, no --force-use-threads: no job starts a Snakemake of its own (each would cost ~2 s)."""
    others = _run([*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--cores", "2", "--config", f"input={SCAN}",
                   f"outdir={tmp_path / 'out'}"], tmp_path)
    assert not others, f"jobs ran in other processes: {others}"


@pytest.mark.slow
def test_module_deployment_runs_without_extra_flags(tmp_path: Path):
    """A user's Snakefile that uses the workflow as a Snakemake module, run as written."""
    (tmp_path / "Snakefile").write_text(
        f'module tomosnake:\n    snakefile:\n        "{ROOT / "Snakefile"}"\n    config:\n        config\n\n\n'
        "use rule * from tomosnake\n")
    others = _run([*SNAKEMAKE, "--cores", "2", "--config", f"input={SCAN}", f"outdir={tmp_path / 'out'}"], tmp_path)
    assert not others, f"jobs ran in other processes: {others}"
    assert (tmp_path / "out" / "tooth" / "tooth_recon.h5").is_file()
