"""A Snakemake process exits when its work is over, also where no ``onsuccess`` runs (a SLURM job step's):
the rate-limit timer Snakemake arms each scheduling round is cancelled at shutdown
(`jobs.exit_promptly_at_shutdown`). Before, every SLURM job's step waited for it, idle: 1.2 s after the
script in sacct; benchmarks/scale.py gave 68 % of the jobs' elapsed time outside their scripts, 36 % after."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROCESS = """
import threading
from tomosnake.jobs import exit_promptly_at_shutdown
{register}
threading.Timer(120, lambda: None).start()  # as Snakemake's scheduler arms one (a 1 s span there)
"""


def run(register: bool, timeout: float) -> subprocess.CompletedProcess:
    code = PROCESS.format(register="exit_promptly_at_shutdown()" if register else "")
    return subprocess.run([sys.executable, "-c", code], timeout=timeout, capture_output=True, text=True)


def test_a_pending_timer_does_not_hold_the_process():
    assert run(register=True, timeout=60).returncode == 0


def test_without_it_the_process_waits_for_the_timer():
    with pytest.raises(subprocess.TimeoutExpired):
        run(register=False, timeout=10)
