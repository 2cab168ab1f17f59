"""Shared fixtures: generated scans and the repository paths."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import h5py
import pytest

from tomosnake.phantom import PhantomSpec, write_scan

REPO = Path(__file__).resolve().parents[1]
TOOTH = REPO / "tests" / "data" / "tooth.h5"  # TomoPy's sample scan; origin and licence in tests/data/README.md


def read_only(path: Path) -> Path:
    """Make a file read-only, as the raw data of a beamline are: nothing may write to it."""
    os.chmod(path, 0o444)
    return path


def edited_scan(path: Path, spec: PhantomSpec, edit: dict | None = None) -> Path:
    """The phantom scan of ``spec`` with datasets replaced (None: deleted), made read-only."""
    write_scan(path, spec)
    with h5py.File(path, "a") as f:
        for key, value in (edit or {}).items():
            del f[key]
            if value is not None:
                f[key] = value
    return read_only(path)


@pytest.fixture(scope="session")
def small_spec() -> PhantomSpec:
    return PhantomSpec(n_proj=120, n_rows=8, n_cols=96, center_offset=2.5, seed=1)


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory: pytest.TempPathFactory, small_spec: PhantomSpec) -> Path:
    """A small noisy phantom scan, read-only."""
    return read_only(write_scan(tmp_path_factory.mktemp("scan") / "phantom.h5", small_spec))


SLURM_LOCK = Path("/tmp/tomosnake-slurm.lock")  # benchmarks/scale.py runs under `flock` of it: alone


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test on the test SLURM (marker ``slurm``) holds the cluster shared with the other xdist worker's; one
    that stops a daemon (``slurm_exclusive``) holds it alone: another run's jobs on a stopped node fail
    ("srun: error: Slurm job ... has expired"), and its job records reach sacct late after a slurmdbd outage."""
    if item.get_closest_marker("slurm") is None:
        yield
        return
    exclusive = item.get_closest_marker("slurm_exclusive") is not None
    with SLURM_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
