"""SLURM's accounting records for the tests, read with ``sacct`` as a client that outlives an outage.

slurmdbd may be down for a minute while a SLURM test runs: tests/test_slurm_chaos.py stops it, as an
administrator might, while the other xdist worker runs the other SLURM tests. ``sacct`` then fails, and
the records of jobs that ran meanwhile lack their comment and end for ~20 s after it comes back.
`sacct` retries until the database answers; `settled` waits until a run's records are whole.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

OUTAGE_LIMIT_S = 180  # the chaos test's outage is 60 s at most
T = TypeVar("T")


def sacct(*args: str) -> str:
    """``sacct args``'s output, once the accounting database answers (an AssertionError after the limit)."""
    deadline = time.monotonic() + OUTAGE_LIMIT_S
    while True:
        proc = subprocess.run(["sacct", *args], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"sacct failed for {OUTAGE_LIMIT_S} s: {proc.stderr.strip()}")
        time.sleep(1)


def settled(read: Callable[[], Sequence[T]], whole: Callable[[T], bool], limit_s: float = 60) -> Sequence[T]:
    """``read()`` once it is non-empty and every record is ``whole`` (after an outage slurmctld sends
    its backlog: about 20 s here)."""
    deadline = time.monotonic() + limit_s
    while True:
        records = read()
        if records and all(whole(r) for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"accounting still shows unfinished jobs: {records}")
        time.sleep(0.5)


def rule_of(comment: str) -> tuple[str, str] | None:
    """(rule, wildcards) from the comment the SLURM plugin gives each job, ``rule_<rule>[_wildcards_<w>]``;
    ("", "") for an empty one (a record sent during a slurmdbd outage lacks it for a while), None for any
    other text."""
    m = re.fullmatch(r"(?:rule_(\w+?)(?:_wildcards_(.*))?)?", comment)
    return (m.group(1) or "", m.group(2) or "") if m else None
