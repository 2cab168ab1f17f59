"""Issue 27's smaller items: each ends with one line and exit 1 (or one line in the job's log), no traceback.
A beam monitor that starts at 0, ``memory_mb: .inf``, a corrupt compressed chunk, a full disk, a
read-only ``<outdir>/<scan>``. Real HDF5 files and real Snakemake runs; the disk cases run in a mount
namespace of their own (a small tmpfs, a read-only bind mount), so they need root and ``unshare``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import edited_scan, read_only
from tests.workflow import run
from tomosnake import preflight
from tomosnake.cli import snakemake_command
from tomosnake.io.scan import RawScan
from tomosnake.phantom import PhantomSpec, i0_trace, write_scan

SPEC = PhantomSpec(n_proj=40, n_rows=6, n_cols=48, center_offset=1.5, seed=3)
BASE = {"overhead_mb": 0, "memory_mb": 60, "threads": 1, "recon": {"center": SPEC.center}, "report": False}


def _one_tomosnake_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tomosnake:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in proc.stderr and "File \"" not in proc.stderr, proc.stderr[-3000:]


def test_a_beam_monitor_starting_at_zero_is_refused_by_preflight(tmp_path):
    monitor = i0_trace(SPEC) * 1000.0
    monitor[0] = 0.0
    scan = edited_scan(tmp_path / "i0.h5", SPEC, {"instrument/beam_monitor/data": monitor})
    cfg = {**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out"), "preprocess": {"i0": {"enabled": True}}}
    with pytest.raises(preflight.PreflightError, match="beam monitor '/instrument/beam_monitor/data' starts at 0"):
        preflight.check(cfg)
    preflight.check(cfg | {"preprocess": {"i0": {"enabled": True, "source": "air"}}})  # the monitor is not used


def test_an_infinite_memory_budget_in_a_config_file_is_one_line(tmp_path):
    scan = read_only(write_scan(tmp_path / "s.h5", SPEC))
    proc = run(tmp_path, {**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out"), "memory_mb": float("inf")},
               check=False, timeout=120)
    assert ".inf" in (tmp_path / "test-config.yaml").read_text()
    _one_tomosnake_line(proc, "config key 'memory_mb'", "finite")


def test_a_corrupt_compressed_chunk_names_file_dataset_and_frame(tmp_path):
    with h5py.File(write_scan(tmp_path / "scratch.h5", SPEC), "r") as f:
        data = f["exchange/data"][()]
    scan = edited_scan(tmp_path / "gz.h5", SPEC)
    os.chmod(scan, 0o644)
    with h5py.File(scan, "a") as f:
        del f["exchange/data"]
        f.create_dataset("exchange/data", data=data, chunks=(1, SPEC.n_rows, SPEC.n_cols), compression="gzip")
    with h5py.File(scan, "r") as f:
        info = f["exchange/data"].id.get_chunk_info_by_coord((3, 0, 0))  # frame 3: not one preflight samples
    with open(scan, "r+b") as f:
        f.seek(info.byte_offset + 2)
        f.write(b"\xff" * 16)
    read_only(scan)
    preflight.check({**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out")})
    with RawScan(scan) as raw, pytest.raises(OSError) as err:
        raw.projections(0, SPEC.n_proj, 0, SPEC.n_rows)
    text = str(err.value)
    assert "\n" not in text and str(scan) in text and "'/exchange/data'" in text and "frame 3 " in text, text


# ------------------------------------------------------------------ disks, in a mount namespace of their own
def _unshare_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare -m (private mounts)")


def _run_with_mount(workdir: Path, config: dict, mount: str) -> subprocess.CompletedProcess:
    """The workflow, with ``mount`` (shell) run first in a private mount namespace."""
    cfg_file = workdir / "test-config.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    cmd = snakemake_command("local", {}, "--configfile", str(cfg_file))
    return subprocess.run(["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *cmd], cwd=workdir,
                          capture_output=True, text=True, timeout=300)


@needs_mounts
def test_a_full_disk_is_one_line_naming_the_path(tmp_path):
    scan = read_only(write_scan(tmp_path / "s.h5", PhantomSpec(n_proj=360, n_rows=16, n_cols=256)))
    out = tmp_path / "out"
    out.mkdir()
    cfg = {**BASE, "input": [str(scan)], "outdir": str(out), "disk_check": False, "memory_mb": 500,
           "recon": {"center": 128}}
    # full before the run starts: the main process's own writes
    proc = _run_with_mount(tmp_path, cfg, f"mount -t tmpfs -o size=64k tmpfs {out} && "
                                          f"dd if=/dev/zero of={out}/fill bs=4k count=64 2>/dev/null; true")
    _one_tomosnake_line(proc, "config key 'outdir'", "No space left on device")
    # full during the run: the pre-processing job's write fails with one line in its log
    proc = _run_with_mount(tmp_path, cfg, f"mount -t tmpfs -o size=600k tmpfs {out} && mkdir -p {out}/s/logs && "
                                          f"mount --bind {tmp_path} {out}/s/logs")
    assert proc.returncode == 1, proc.stderr[-3000:]
    log = (tmp_path / "preprocess_0.log").read_text()
    assert "No space left on device: cannot write " in log and "preproc" in log, log
    assert "Traceback" not in log and len(log.strip().splitlines()) <= 3, log


@needs_mounts
def test_a_read_only_scan_folder_is_refused_before_anything_runs(tmp_path):
    scan = read_only(write_scan(tmp_path / "s.h5", SPEC))
    out = tmp_path / "out"
    (out / "s").mkdir(parents=True)
    cfg = {**BASE, "input": [str(scan)], "outdir": str(out)}
    proc = _run_with_mount(tmp_path, cfg, f"mount --bind {out}/s {out}/s && mount -o remount,ro,bind {out}/s")
    _one_tomosnake_line(proc, f"{out / 's'} is read-only")
    assert not (out / "s" / "plan.json").exists()
    np.testing.assert_equal(sorted(p.name for p in (out / "s").iterdir()), [])
