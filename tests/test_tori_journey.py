"""The beamline's journey: a .tori from the Reconstructor GUI to a report in one command, run as a user runs it
(`tomosnake run ...` and `snakemake --profile local ...` from the repository root, each a subprocess), for every
.tori in tests/data: on the tooth scan, or, for full.tori (another detector's file layout), on a generated scan
written in the layout the file names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from tomosnake import config
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.profiles import install_profiles

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
TOOTH = DATA / "tooth.h5"
TORIS = sorted(p.name for p in DATA.glob("*.tori"))
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def user_env(tmp_path_factory) -> dict[str, str]:
    """A user's environment after the README's install step: the profiles linked where Snakemake looks."""
    xdg = tmp_path_factory.mktemp("xdg")
    install_profiles(xdg / "snakemake")
    return {**os.environ, "XDG_CONFIG_HOME": str(xdg), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def full_tori_scan(work: Path) -> tuple[Path, Path]:
    """full.tori's files for a small detector: the projections at entry/instrument/pco/data, flats at
    exchange/flats of the same file, darks in a file of their own at entry/instrument/pco/dark (the layout the
    .tori names), 96 rows x 132 columns (its row slice 10:90 and crop fit), 400 projections over 360 degrees
    (its slice_proj step 2 and excluded ranges fit). Returns the copy of full.tori naming them, and a config
    file with the two values that describe the real 2048-column detector: its centre and half-acquisition axis."""
    work.mkdir(parents=True, exist_ok=True)
    scan, darks = work / "scan-0042.h5", work / "darks-0041.h5"
    write_scan(scan, PhantomSpec(n_proj=400, n_rows=96, n_cols=132, theta_end=360.0, center_offset=30.0))
    with h5py.File(scan, "r+") as f, h5py.File(darks, "w") as d:
        f.move("exchange/data", "entry/instrument/pco/data")
        f.move("exchange/data_white", "exchange/flats")
        d["entry/instrument/pco/dark"] = f["exchange/data_dark"][()]
        del f["exchange/data_dark"]
    tori = json.loads((DATA / "full.tori").read_text())
    tori["file_definitions"] |= {"data_file": str(scan), "dark_file": str(darks), "flat_file": str(scan)}
    (work / "full.tori").write_text(json.dumps(tori, indent=1))
    overrides = work / "detector.yaml"
    overrides.write_text(yaml.safe_dump({"recon": {"center": None, "sino_360_to_180": {"old_center": "auto"}}}))
    return work / "full.tori", overrides


def user_args(name: str, work: Path, *config: str) -> list[str]:
    """What the user types after the command for ``name``: the .tori, the scan (or the .tori's own), the output,
    then ``config``'s further ``key=value``."""
    if name == "full.tori":
        tori, overrides = full_tori_scan(work / "scan")
        return ["--configfile", str(overrides), "--config", f"tori={tori}", f"outdir={work / 'out'}", *config]
    return ["--config", f"tori={DATA / name}", f"input={TOOTH}", f"outdir={work / 'out'}", *config]


def check_finished(proc: subprocess.CompletedProcess, out: Path) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    assert "Traceback" not in text, text[-5000:]
    (scan,) = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert (scan / f"{scan.name}_recon.h5").is_file()
    assert (scan / f"{scan.name}_report.pdf").stat().st_size > 0
    assert (scan / "cleanup.done").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", TORIS)
def test_tomosnake_run_with_a_tori(name: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    cmd = ["tomosnake", "run", "--profile", "local", "--cores", "2", *user_args(name, tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=600)
    check_finished(proc, tmp_path / "out")
    if name == "full.tori":  # the GUI's TomoPy name, run as algotom's implementation of the same method
        assert "'remove_stripe_ti' runs as 'remove_stripe_based_regularization'" in proc.stderr
        assert "not carried over: alpha=1.5" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", TORIS)
def test_snakemake_with_a_tori_from_the_repository_root(name: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    cmd = ["snakemake", "--profile", "local", "--cores", "2", *user_args(name, tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=user_env, capture_output=True, text=True, timeout=600)
    check_finished(proc, tmp_path / "out")


@pytest.mark.slow
def test_a_config_value_replaces_the_tori_stripe_setting(tmp_path: Path, user_env: dict[str, str]) -> None:
    """``preprocess={stripe: {function: profile}}`` over full.tori's remove_stripe_ti runs profile without the
    file's arguments; ``kwargs: null`` keeps the function and drops the arguments."""
    for stripe, expected in (("{function: profile}", ("profile", {})),
                             ("{kwargs: null}", ("remove_stripe_based_regularization", {}))):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        cmd = ["tomosnake", "run", "--profile", "local", "--cores", "2", "-n",
               *user_args("full.tori", tmp_path, f"preprocess={{stripe: {stripe}}}")]
        proc = subprocess.run(cmd, cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        used = config.load(json.loads((tmp_path / "out" / ".tomosnake" / "config.json").read_text()))
        assert (used.preprocess.stripe.function, used.preprocess.stripe.kwargs) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", TORIS)
def test_audit_with_a_tori(name: str, tmp_path: Path, user_env: dict[str, str]) -> None:
    cmd = ["tomosnake", "audit", "--profile", "local", *user_args(name, tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=user_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "jobs per rule" in proc.stdout and "Traceback" not in proc.stderr
