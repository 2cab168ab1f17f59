"""The test SLURM enforces each job's memory request with cgroups, as a facility cluster with
``ConstrainRAMSpace=yes`` does: a job that touches more than its ``--mem`` ends OUT_OF_MEMORY in
SLURM's accounting, one that stays below completes. Skipped, with the reason, where this kernel
cannot confine memory (``.ci/slurm/start.sh`` then says so and configures no enforcement)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.accounting import sacct
from tests.test_slurm import NO_CONTROLLER

SLURM_CI = Path(__file__).resolve().parents[1] / ".ci" / "slurm"
ENDED = {"COMPLETED", "FAILED", "OUT_OF_MEMORY", "CANCELLED", "TIMEOUT", "NODE_FAIL"}


def _why_not_enforced() -> str:
    """Why this kernel cannot confine job memory (the check start.sh makes), or ''."""
    return subprocess.run(["bash", "-c", f"source {SLURM_CI / 'common.sh'} && cgroup_memory_why_not"],
                          capture_output=True, text=True, check=False).stdout.strip()


WHY_NOT = NO_CONTROLLER or _why_not_enforced()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "")]


def _touch_mb(mb: int, mem: str, out: Path) -> str:
    """Submit a job that writes to every page of ``mb`` MiB under ``--mem=mem``; its final sacct state."""
    code = f"a = bytearray({mb} << 20); a[::4096] = b'x' * len(a[::4096]); print('survived')"
    job = subprocess.run(["sbatch", "--parsable", "-J", "tomosnake-mem-test", "-o", str(out), "-t", "2",
                          f"--mem={mem}", "--wrap", f"python3 -c \"{code}\""],
                         capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = sacct("-n", "-X", "-P", "-j", job, "-o", "State").strip()
        if state in ENDED:
            return state
        time.sleep(0.2)
    subprocess.run(["scancel", job], check=False)
    raise AssertionError(f"job {job} did not end in 120 s")


def test_job_above_its_memory_request_is_killed(tmp_path):
    assert _touch_mb(400, "100M", tmp_path / "over.out") == "OUT_OF_MEMORY"
    assert "survived" not in (tmp_path / "over.out").read_text()


def test_job_below_its_memory_request_completes(tmp_path):
    assert _touch_mb(20, "200M", tmp_path / "under.out") == "COMPLETED"
    assert "survived" in (tmp_path / "under.out").read_text()
