"""Shared fixtures: generated scans and the repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tomosnake.phantom import PhantomSpec, write_scan

REPO = Path(__file__).resolve().parents[1]
TOOTH = REPO / "tests" / "data" / "tooth.h5"  # TomoPy's sample scan; origin and licence in tests/data/README.md


def read_only(path: Path) -> Path:
    """Make a file read-only, as the raw data of a beamline are: nothing may write to it."""
    os.chmod(path, 0o444)
    return path


@pytest.fixture(scope="session")
def small_spec() -> PhantomSpec:
    return PhantomSpec(n_proj=120, n_rows=8, n_cols=96, center_offset=2.5, seed=1)


@pytest.fixture(scope="session")
def small_scan(tmp_path_factory: pytest.TempPathFactory, small_spec: PhantomSpec) -> Path:
    """A small noisy phantom scan, read-only."""
    return read_only(write_scan(tmp_path_factory.mktemp("scan") / "phantom.h5", small_spec))
