"""Reliability of a real run: the raw input is never modified, a job killed mid-write leaves nothing
that looks complete and a rerun gives the same volume bit for bit, names with shell metacharacters
inject nothing. The real Snakefile runs in a subprocess (local executor) on small phantom scans.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import REPO, read_only
from tests.workflow import run, volume
from tomosnake import preflight
from tomosnake.cli import snakemake_command
from tomosnake.config import scan_name, validate
from tomosnake.jobs import PROCESS_ENV
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import Plan

pytestmark = pytest.mark.slow

SPEC = PhantomSpec(n_proj=720, n_rows=16, n_cols=256, center_offset=2.0, seed=5)
EVIL = "a b; touch PWNED $(touch PWNED2) `touch PWNED3`.h5"
OUTPUT = {"recon": "recon/recon_{n}.h5", "preprocess": "preproc/chunk_{n}.h5"}


def _digest(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode & 0o777


def _plan(cfg: dict, scan: Path) -> Plan | None:
    try:
        return preflight.plan_scan(validate(cfg), str(scan), "probe")
    except preflight.PreflightError:
        return None


def _chunk_config(scan: Path) -> dict:
    """The largest per-stage budgets (overhead_mb 0) whose plan has a chunk 1 in both stages written
    in two loads or more, so that a kill after the first load is a kill mid-write (fewest jobs).
    Threads are the default (2): the rerun must match whatever order the threads' sums took."""
    base = {"input": [str(scan)], "overhead_mb": 0, "subchunks_per_job": 2, "cleanup": False,
            "report": False, "recon": {"center": SPEC.center}, "recon_memory_mb": 1000}

    def preprocess_split(plan: Plan) -> bool:
        if plan.k < 2:
            return False
        p0, p1 = plan.proj_chunks[1]
        return math.ceil((p1 - p0) / plan.tile[0]) * math.ceil(plan.shape[1] / plan.tile[1]) > 1

    def recon_split(plan: Plan) -> bool:
        if plan.j < 2:
            return False
        r0, r1 = plan.sino_chunks[1]
        return r1 - r0 > plan.slices_per_load

    pre = next(mb for mb in range(100, 10, -1) if (p := _plan(base | {"memory_mb": mb}, scan)) and preprocess_split(p))
    base |= {"memory_mb": pre}
    rec = next(mb for mb in range(200, 10, -1) if (p := _plan(base | {"recon_memory_mb": mb}, scan)) and recon_split(p))
    return base | {"recon_memory_mb": rec}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An undisturbed run on a scan whose file and folder names hold shell metacharacters."""
    root = tmp_path_factory.mktemp("evil")
    raw_dir = root / "raw $(touch PWNED4); dir"
    raw_dir.mkdir()
    scan = read_only(write_scan(raw_dir / EVIL, SPEC))
    before = _digest(scan)
    work = root / "work dir"
    cfg = _chunk_config(scan) | {"outdir": str(work / "out")}
    run(work, cfg)
    d = work / "out" / scan_name(scan)
    return {"root": root, "scan": scan, "before": before, "work": work, "cfg": cfg,
            "volume": volume(d / f"{scan_name(scan)}_recon.h5"), "plan": Plan.read(d / "plan.json")}


def test_metacharacters_in_names_run_and_inject_nothing(reference):
    assert scan_name(reference["scan"]) == "a_b_touch_PWNED_touch_PWNED2_touch_PWNED3"
    assert reference["volume"].shape == (SPEC.n_rows, SPEC.n_cols, SPEC.n_cols)
    assert np.isfinite(reference["volume"]).all()
    for folder in (reference["root"], REPO, Path.cwd(), Path.home()):
        found = list(folder.rglob("PWNED*")) if folder == reference["root"] else list(folder.glob("PWNED*"))
        assert not found, found


def test_raw_input_is_never_modified(reference):
    assert _digest(reference["scan"]) == reference["before"]
    assert reference["before"][2] == 0o444


@pytest.mark.parametrize("own_process", [False, True], ids=["in-snakemake", "own-process"])
def test_killed_chunks_leave_nothing_mistakable_and_rerun_is_identical(reference, tmp_path, own_process):
    """SIGKILL a preprocessing job, then (next run) a reconstruction job, each after its first load;
    a third run finishes the scan with the undisturbed run's volume, bit for bit. A job runs in
    Snakemake's process (the kill ends the run, as a crash of the machine would) or in its own
    (`tomosnake.jobs.PROCESS_ENV`, as with conda envs: Snakemake sees the job die)."""
    scan = read_only(Path(shutil.copy(reference["scan"], tmp_path / "phantom.h5")))
    cfg = reference["cfg"] | {"input": [str(scan)], "outdir": str(tmp_path / "out")}
    d = tmp_path / "out" / "phantom"
    env = {PROCESS_ENV: "1" if own_process else "0"}
    for rule in ("preprocess", "recon"):
        killed = run(tmp_path, cfg | {"fault": {"rule": rule, "chunk": 1, "kind": "kill"}}, check=False, env=env)
        if own_process:
            assert killed.returncode == 1
            assert "Signals.SIGKILL" in killed.stdout + killed.stderr
        else:
            assert killed.returncode == -signal.SIGKILL
        target = d / OUTPUT[rule].format(n=1)
        assert not target.exists()
        assert not (d / "phantom_recon.h5").exists()
        # The kill came after the first load was written: the partial file is there, under a hidden name.
        leftovers = list(target.parent.glob(f".{target.name}.tmp-*"))
        assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0, leftovers
        for path in d.rglob("*.h5"):  # every file under a final name is a complete HDF5 file
            if not path.name.startswith("."):
                with h5py.File(path, "r") as f:
                    f.visit(lambda name: None)

    run(tmp_path, cfg)
    rerun = volume(d / "phantom_recon.h5")
    assert rerun.dtype == reference["volume"].dtype
    assert np.array_equal(rerun, reference["volume"])
    assert _digest(scan)[0] == reference["before"][0]


WRITER = """
import sys, time, h5py, numpy as np
from tomosnake.io.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp, h5py.File(tmp, "w") as f:
    for i in range(20):
        f[f"block_{i}"] = np.full((16, 128, 128), i, dtype=np.float32)
        f.flush()
        time.sleep(0.05)
    f.attrs["complete"] = True
"""


def _start_writer(target: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(target)], env=os.environ | {"PYTHONPATH": str(REPO)})


def test_sigkill_at_any_point_leaves_no_final_file(tmp_path):
    """A writer using `atomic_path` (20 blocks, 1 s at least) killed before it starts and at several
    points of its write: the final name never appears; only a hidden temporary file is left. Left
    alone, it writes the complete file under the final name."""
    target = tmp_path / "out.h5"
    for delay in (None, 0.0, 0.25, 0.5, 0.75):
        proc = _start_writer(target)
        if delay is not None:  # wait until the write has begun
            while not list(tmp_path.glob(".out.h5.tmp-*")) and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers = list(tmp_path.glob(".out.h5.tmp-*"))
        assert not target.exists()
        assert set(tmp_path.iterdir()) == set(leftovers) and len(leftovers) == (delay is not None)
        for tmp in leftovers:
            tmp.unlink()
    assert _start_writer(target).wait() == 0
    with h5py.File(target, "r") as f:
        assert f.attrs["complete"] and len(f) == 20
    assert list(tmp_path.iterdir()) == [target]


# Where to SIGKILL the main Snakemake process: when this job's log appears (its job has started).
KILL_AT = {"plan": "plan.log", "preprocess": "preprocess_1.log", "recon": "recon_1.log", "combine": "combine.log",
           "cleanup": "cleanup.log"}


def test_same_command_resumes_after_sigkill_of_snakemake_at_every_stage(reference, tmp_path):
    """The main Snakemake process is killed (SIGKILL, as by a reboot or the OOM killer) once in each stage;
    each time the very same command is started again, from another directory for the first kill. While a
    run holds the output directory, a second run into it from elsewhere stops with one line. The finished
    volume equals the undisturbed run's bit for bit, and no temporary file is left.
    Threads as in `reference` (one: the default backend's threads are not yet deterministic)."""
    cfg = reference["cfg"] | {"outdir": str(tmp_path / "out"), "cleanup": True}
    d = tmp_path / "out" / scan_name(reference["scan"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cfg_file = tmp_path / "scan.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    command = snakemake_command("local", {}, "--configfile", str(cfg_file))
    # First a plan with another memory budget, made from elsewhere (as `tomosnake audit` would): the run
    # must make its own plan.
    other_budget = tmp_path / "other.yaml"
    other_budget.write_text(yaml.safe_dump(cfg | {"recon_memory_mb": cfg["recon_memory_mb"] * 4}))
    subprocess.run(snakemake_command("local", {}, "--configfile", str(other_budget), "--until", "plan"),
                   cwd=elsewhere, check=True, capture_output=True, timeout=300)
    assert Plan.read(d / "plan.json").j != reference["plan"].j
    killed = []
    for stage, log in KILL_AT.items():
        cwd = tmp_path if stage != "preprocess" else elsewhere
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (d / "logs" / log).exists() and proc.poll() is None:
            time.sleep(0.001)  # every ms: the run ends ~45 ms after the cleanup job's log appears
        proc.send_signal(signal.SIGSTOP)  # held where its job has started: the run's jobs take ms here
        if stage == "recon":  # a second run into the same outdir, from elsewhere, while this one runs
            other = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=300)
            lines = [s for s in other.stderr.splitlines() if s.startswith("tomosnake:")]
            assert other.returncode == 1 and len(lines) == 1 and "in use by another run" in lines[0], other.stderr
        proc.send_signal(signal.SIGKILL)
        killed.append((stage, proc.wait()))
    assert killed == [(stage, -signal.SIGKILL) for stage in KILL_AT], killed
    final = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-4000:]
    assert (d / "cleanup.done").exists() and Plan.read(d / "plan.json") == reference["plan"]
    assert np.array_equal(volume(d / f"{scan_name(reference['scan'])}_recon.h5"), reference["volume"])
    assert not [p for p in d.rglob(".*tmp-*")], list(d.rglob(".*tmp-*"))
