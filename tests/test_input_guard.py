"""No input is ever written, moved or deleted: an input lying where the workflow writes is refused before
anything runs (the real Snakefile, issue 27's three cases), and cleanup keeps any path that is an input."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import read_only
from tests.workflow import run
from tomosnake import guard
from tomosnake.cli import run_command
from tomosnake.config import validate
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.cleanup import clean
from tomosnake.stages.plan import Plan

SPEC = PhantomSpec(n_proj=60, n_rows=4, n_cols=48, center_offset=1.0, seed=4)
FAST = {"threads": 1, "memory_mb": 200, "overhead_mb": 0, "recon": {"center": SPEC.center}, "report": False}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("where", ["recon_0/recon/recon_0.h5", "chunk_0/preproc/chunk_0.h5",
                                   ".tomosnake/inputs/good.h5"],
                         ids=["recon-chunk", "preproc-chunk", "input-alias"])
def test_input_where_the_workflow_writes_is_refused_before_anything_runs(tmp_path, where):
    out = tmp_path / "e"
    raw = out / where
    raw.parent.mkdir(parents=True)
    write_scan(raw, SPEC)
    os.chmod(raw, 0o644)  # writable, as a user's copy is: only the workflow's restraint protects it
    before = _sha(raw)
    proc = run(tmp_path, {**FAST, "input": [str(raw)], "outdir": str(out)}, check=False, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tomosnake:")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and "lies where the workflow writes" in lines[0] and str(raw) in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert raw.is_file() and not raw.is_symlink() and _sha(raw) == before
    assert not any(out.glob("*/plan.json"))


def test_symlinked_folder_and_hard_link_are_seen(tmp_path):
    out = tmp_path / "out"
    (out / "s").mkdir(parents=True)
    data = tmp_path / "data"
    data.mkdir()
    raw = write_scan(data / "s.h5", SPEC)
    os.symlink(data, out / "s" / "recon")  # the recon folder is the data folder
    cfg = validate({"input": [str(raw)], "outdir": str(out)})
    with pytest.raises(guard.InputInOutdir, match="reconstructed chunks"):
        guard.check_outside(cfg, ["s"])
    (out / "s" / "recon").unlink()
    os.link(raw, out / "s" / "plan.json")  # a hard link at a managed name
    with pytest.raises(guard.InputInOutdir, match="plan"):
        guard.check_outside(cfg, ["s"])
    (out / "s" / "plan.json").unlink()
    guard.check_outside(cfg, ["s"])  # beside the managed names is fine
    tori = out / "s" / "logs" / "scan.tori"
    with pytest.raises(guard.InputInOutdir, match="config key 'config file'"):
        guard.check_outside(cfg, ["s"], [tori])
    guard.check_outside(cfg, ["s"], [out / "s" / "s_recon.yaml"])  # the volume's config repeats the run


def test_cleanup_keeps_an_input_whatever_its_name(tmp_path):
    raw = read_only(write_scan(tmp_path / "raw.h5", SPEC))
    scan_dir = tmp_path / "out" / "s"
    (scan_dir / "preproc").mkdir(parents=True)
    os.link(raw, scan_dir / "preproc" / "chunk_0.h5")  # a hard link of the raw file
    os.symlink(raw, scan_dir / "preproc.vds.h5")  # a symlink to it
    (scan_dir / "preproc" / "chunk_1.h5").write_text("x")
    plan = Plan(scan="s", input=str(raw), info={}, crop=(0, 1, 0, 1), proj_chunks=[(0, 1)] * 2, tile=(1, 1),
                sino_chunks=[(0, 1)], slices_per_load=1, recon_width=1, center=0.0, center_method="config",
                log_applied=False, memory_mb=1.0)
    before = _sha(raw)
    clean(plan, scan_dir, keep_recon=True, workdir=tmp_path, inputs=[raw])
    assert (scan_dir / "preproc" / "chunk_0.h5").exists() and (scan_dir / "preproc.vds.h5").is_symlink()
    assert not (scan_dir / "preproc" / "chunk_1.h5").exists()
    assert _sha(raw) == before


def test_the_volumes_config_file_repeats_the_run(tmp_path):
    """The one managed file a run may read: ``<scan>_recon.yaml``, as its header's command gives it."""
    raw = read_only(write_scan(tmp_path / "s.h5", SPEC))
    out = tmp_path / "out"
    run(tmp_path, {**FAST, "input": [str(raw)], "outdir": str(out)}, timeout=300)
    again = tmp_path / "again"
    again.mkdir()
    proc = subprocess.run(run_command(["--profile", "local", "--configfile", str(out / "s" / "s_recon.yaml")]),
                          cwd=again, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "s" / "s_recon.yaml").is_file()
