"""Hostile file and folder names through the real test SLURM (profile slurm-test): no name ever runs
as a command, on the submitting host or in a job.

The SLURM executor submits ``sbatch --wrap="<job command>"`` through a shell; the workflow keeps every
user string out of that command (tomosnake/outdir.py). One invocation reconstructs two scans whose
files and folders hold ``$(...)``, backticks, ``;``, both quotes, spaces, a leading dash, unicode,
commas, braces and a newline, into an output folder with spaces, ``;``, a comma, a leading dash and
unicode: every job must complete and read its own scan. An output folder that Snakemake or the shell
cannot carry is refused with one line before anything is queued. Every command the names would run
touches a ``PWNED*`` marker; none may appear anywhere.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.accounting import sacct
from tests.conftest import REPO, read_only
from tests.test_slurm import NO_CONTROLLER, RUN_LIMIT_S, slurm_jobs, snakemake_slurm
from tests.workflow import volume
from tomosnake.cli import snakemake_command
from tomosnake.config import scan_name
from tomosnake.phantom import PhantomSpec, write_scan

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(NO_CONTROLLER is not None, reason=NO_CONTROLLER or "")]

SPEC = PhantomSpec(n_proj=90, n_rows=8, n_cols=64, center_offset=1.0, seed=2)
# (folder, file) of each scan
HOSTILE = [
    ("raw $(touch PWNED1); it's \"q\" `touch PWNED2`", "-s1,{x} ü 'a' \"b\"; $(touch PWNED3).h5"),
    ("-lead, {brace}\nline && touch PWNED4", "s2 `touch PWNED5`\n.h5"),
]
CONFIG = {"overhead_mb": 0, "threads": 1, "memory_mb": 1500, "report": False, "cleanup": False,
          "recon": {"center": SPEC.center}}


def markers(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        found += root.rglob("PWNED*") if root.is_dir() else []
    return found


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    scans = []
    for folder, name in HOSTILE:
        (root / folder).mkdir()
        scans.append(read_only(write_scan(root / folder / name, SPEC)))
    work = root / "work"
    work.mkdir()
    out = work / "out; -dir, ü"
    # successful jobs' SLURM logs kept, to see where they go
    run = snakemake_slurm(work, CONFIG | {"input": [str(s) for s in scans], "outdir": str(out)},
                          "--slurm-keep-successful-logs")
    return root, work, out, scans, run


def test_hostile_names_run_every_job_and_inject_nothing(hostile_run):
    root, work, out, scans, run = hostile_run
    assert run.returncode == 0, run.output[-4000:]
    jobs = slurm_jobs(run)
    assert jobs and {j.state for j in jobs} == {"COMPLETED"}, jobs
    volumes = [volume(out / scan_name(s) / f"{scan_name(s)}_recon.h5") for s in scans]
    assert all(np.array_equal(volumes[0], v) for v in volumes[1:])  # the same phantom in every file
    assert volumes[0].shape == (SPEC.n_rows, SPEC.n_cols, SPEC.n_cols) and np.isfinite(volumes[0]).all()
    assert not markers(root, REPO, Path.home()), markers(root, REPO, Path.home())
    submitted = sacct("--noheader", "--allocations", "--parsable2", "--starttime=now-2days", f"--name={run.run_id}",
                      "--format=SubmitLine")
    # No folder name reached a job's command (they never become scan names), nor any shell syntax of a name.
    assert not [s for s in ("$(", "`", "PWNED1", "PWNED2", "PWNED4") if s in submitted], submitted


def test_state_and_slurm_logs_belong_to_the_outdir(hostile_run):
    """Jobs start in the outdir; Snakemake's records and the SLURM logs are there, not where the run began."""
    root, work, out, scans, run = hostile_run
    # (Snakemake opens its own run log in .snakemake/log/ of the starting directory before the workflow loads.)
    assert (out / ".snakemake" / "metadata").is_dir() and not (work / ".snakemake" / "metadata").exists()
    logs = list((out / "logs" / "slurm").rglob("*.log"))
    assert {p.parent.name for p in logs} >= {scan_name(s) for s in scans}, logs
    assert not (work / "logs").exists()
    workdirs = sacct("--noheader", "--allocations", "--parsable2", "--starttime=now-2days", f"--name={run.run_id}",
                     "--format=WorkDir").split("\n")
    assert {w for w in workdirs if w} == {str(out)}


def test_outdir_that_cannot_be_carried_is_refused_before_queueing(tmp_path):
    name = "out $(touch PWNED6) 'q' {x}\nnl"
    scan = write_scan(tmp_path / "scan.h5", SPEC)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG | {"input": [str(scan)], "outdir": str(tmp_path / name)}))
    proc = subprocess.run(["timeout", "-k", "10", str(RUN_LIMIT_S),
                           *snakemake_command("slurm-test", {}, "--configfile", str(cfg))],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    lines = [s for s in proc.stderr.splitlines() if s.startswith("tomosnake:")]
    assert proc.returncode == 1 and len(lines) == 1 and "config key 'outdir'" in lines[0], proc.stderr[-3000:]
    assert "SLURM run ID" not in proc.stdout + proc.stderr and not (tmp_path / name).exists()
    assert not markers(tmp_path)
