"""Helpers for tests that run the real Snakefile in a subprocess."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import yaml

from tomosnake.cli import snakemake_command

RULES = ("plan", "preprocess_chunk", "vds_merge", "recon_chunk", "combine", "report", "cleanup")


def run(workdir: Path, config: dict, *extra: str, profile: str = "local", check: bool = True,
        timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config`` (written as a YAML config file), with ``env``
    added to the environment."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_file = workdir / "test-config.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    cmd = snakemake_command(profile, {}, "--configfile", str(cfg_file), "--directory", str(workdir), *extra)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | (env or {}))
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def nothing_to_do(workdir: Path, config: dict) -> bool:
    """Whether a dry run of the same target schedules no job."""
    proc = run(workdir, config, "-n")
    return "Nothing to be done" in proc.stdout + proc.stderr


def scheduled_rules(workdir: Path, config: dict) -> set[str]:
    """Rules a dry run would run, from Snakemake's job table."""
    proc = run(workdir, config, "-n", "--quiet", "rules")
    text = proc.stdout + proc.stderr
    return {rule for rule in (*RULES, "conversion_range") if f"\n{rule} " in text or f"\n{rule}\t" in text}


def volume(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["exchange/data"][()]


def fit_error(recon: np.ndarray, truth: np.ndarray, radius: float = 0.9) -> tuple[float, float]:
    """(normalised RMSE, gain) after a least-squares gain/offset fit, inside ``radius`` of the field of view.

    The RMSE is relative to the ground truth's dynamic range.
    """
    n = truth.shape[-1]
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    mask = np.broadcast_to(np.hypot(x, y) <= radius * n / 2, truth.shape)
    a, t = recon[mask].astype(np.float64), truth[mask].astype(np.float64)
    gain, offset = np.polyfit(a, t, 1)
    rmse = np.sqrt(np.mean((gain * a + offset - t) ** 2))
    return float(rmse / (t.max() - t.min())), float(1 / gain)
