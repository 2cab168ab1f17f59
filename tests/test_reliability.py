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

from tests.conftest import REPO, read_only
from tests.workflow import run, volume
from tomosnake import preflight
from tomosnake.config import scan_name, validate
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
    in two loads or more, so that a kill after the first load is a kill mid-write (fewest jobs)."""
    base = {"input": [str(scan)], "overhead_mb": 0, "threads": 1, "subchunks_per_job": 2, "cleanup": False,
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
    return {"root": root, "scan": scan, "before": before, "work": work, "cfg": cfg,
            "volume": volume(work / "out" / scan_name(scan) / f"{scan_name(scan)}_recon.h5")}


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


def test_killed_chunks_leave_nothing_mistakable_and_rerun_is_identical(reference, tmp_path):
    """SIGKILL a preprocessing job, then (next run) a reconstruction job, each after its first load;
    a third run finishes the scan with the undisturbed run's volume, bit for bit."""
    scan = read_only(Path(shutil.copy(reference["scan"], tmp_path / "phantom.h5")))
    cfg = reference["cfg"] | {"input": [str(scan)], "outdir": str(tmp_path / "out")}
    d = tmp_path / "out" / "phantom"
    for rule in ("preprocess", "recon"):
        killed = run(tmp_path, cfg | {"fault": {"rule": rule, "chunk": 1, "kind": "kill"}}, check=False)
        assert killed.returncode != 0
        assert "Signals.SIGKILL" in killed.stdout + killed.stderr
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
