"""cleanup: what it removes and keeps; and, on the real workflow in virtual mode, that nothing is
recomputed afterwards and that a parameter change reruns only from the stage it affects."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import read_only
from tests.workflow import nothing_to_do, run
from tomosnake import config as tconfig
from tomosnake.stages.cleanup import (
    clean,
    intermediates,
    leftover_temporaries,
    prune_empty_dirs,
    successful_slurm_logs,
)
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import Plan, make_plan
from tomosnake.report.timings import read_jobs

SLURM_OK = "Building DAG of jobs...\nrule recon_chunk:\n    jobid: 0\nFinished jobid: 0 (Rule: recon_chunk)\n" \
           "1 of 1 steps (100%) done\n"
SLURM_FAILED = "Building DAG of jobs...\nrule recon_chunk:\nError in rule recon_chunk:\n    jobid: 0\n"


def plan_of(k: int, j: int, scan: str = "s") -> Plan:
    return Plan(scan=scan, input="raw.h5", info={}, crop=(0, 1, 0, 1), proj_chunks=[(0, 1)] * k, tile=(1, 1),
                sino_chunks=[(0, 1)] * j, slices_per_load=1, recon_width=1, center=0.0, center_method="config",
                log_applied=False, memory_mb=1.0)


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_intermediates_keep_recon_chunks_of_a_virtual_volume(tmp_path):
    physical = {p.relative_to(tmp_path).as_posix() for p in intermediates(plan_of(2, 3), tmp_path, keep_recon=False)}
    virtual = {p.relative_to(tmp_path).as_posix() for p in intermediates(plan_of(2, 3), tmp_path, keep_recon=True)}
    assert virtual == {"preproc/chunk_0.h5", "preproc/chunk_1.h5", "preproc.vds.h5"}
    assert physical == virtual | {"recon/recon_0.h5", "recon/recon_1.h5", "recon/recon_2.h5"}


def test_clean_removes_leftovers_and_successful_slurm_logs_only(tmp_path):
    scan_dir, work = tmp_path / "out" / "s", tmp_path
    for rel in ("preproc/chunk_0.h5", "preproc.vds.h5", "recon/recon_0.h5", "s_recon.h5", "logs/recon_0.log"):
        touch(scan_dir / rel)
    killed = touch(scan_dir / "recon" / ".recon_0.h5.tmp-4242")  # a job killed mid-write
    unrelated = touch(scan_dir / "recon" / ".notes.tmp-1")
    ok = touch(work / "logs/slurm/rule_recon_chunk/s_0/101.log", SLURM_OK)
    failed = touch(work / "logs/slurm/rule_recon_chunk/s_1/102.log", SLURM_FAILED)
    other_scan = touch(work / "logs/slurm/rule_recon_chunk/other_0/103.log", SLURM_OK)
    default_dir = touch(work / ".snakemake/slurm_logs/rule_combine/s/104.log", SLURM_OK)
    assert successful_slurm_logs(work, "s") == [ok, default_dir]

    summary = clean(plan_of(1, 1), scan_dir, keep_recon=False, workdir=work)
    assert not (scan_dir / "preproc").exists() and not (scan_dir / "preproc.vds.h5").exists()
    assert not (scan_dir / "recon" / "recon_0.h5").exists() and not killed.exists()
    assert unrelated.exists() and failed.exists() and other_scan.exists()
    assert not ok.exists() and not ok.parent.exists() and not default_dir.exists()
    assert (scan_dir / "s_recon.h5").exists() and (scan_dir / "logs" / "recon_0.log").exists()
    assert summary.startswith("removed 3 intermediate files, 1 leftover temporaries and 2 SLURM logs")
    # A second cleanup finds nothing and fails on nothing.
    assert clean(plan_of(1, 1), scan_dir, keep_recon=False, workdir=work).startswith("removed 0 intermediate files, 0")


def test_leftover_temporaries_are_only_those_of_the_named_files(tmp_path):
    f = touch(tmp_path / "chunk_1.h5")
    mine = touch(tmp_path / ".chunk_1.h5.tmp-77")
    touch(tmp_path / ".chunk_11.h5.tmp-77")
    assert leftover_temporaries([f, tmp_path / "missing" / "x.h5"]) == [mine]


def test_prune_stops_at_a_non_empty_folder(tmp_path):
    keep = touch(tmp_path / "a" / "keep.txt")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    prune_empty_dirs([tmp_path / "a" / "b" / "c"])
    assert not (tmp_path / "a" / "b").exists() and keep.exists()


# ----------------------------------------------------------------------------------------- real workflow
SPEC = PhantomSpec(n_proj=90, n_rows=2, n_cols=64, center_offset=1.5, seed=6)
BUDGET_MB = 36


def scheduled(workdir: Path, config: dict) -> dict[str, int]:
    """Rule -> job count of a dry run (Snakemake's job table)."""
    proc = run(workdir, config, "-n", "--quiet", "rules")
    table = re.findall(r"^([a-z_]+)\s+(\d+)$", proc.stdout + proc.stderr, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in table if rule not in ("total", "all")}


@pytest.fixture(scope="module")
def virtual_run(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("virtual")
    cfg = {"outdir": str(work / "out"), "memory_mb": BUDGET_MB, "overhead_mb": 0, "subchunks_per_job": 1,
           "threads": 1, "cleanup": True, "output": {"combine": "virtual", "pyramid": [2], "ome_zarr": True}}
    # Rows for two reconstruction jobs: half as many again as one job's load at this budget.
    probe = write_scan(work / "probe.h5", SPEC)
    per_load = make_plan(tconfig.validate(cfg | {"input": [str(probe)]}), str(probe), "probe").slices_per_load
    raw = read_only(write_scan(work / "scan.h5", replace(SPEC, n_rows=per_load + max(4, per_load // 2))))
    cfg["input"] = [str(raw)]
    run(work, cfg)
    return work, cfg


@pytest.mark.slow
def test_virtual_cleanup_keeps_the_recon_chunks(virtual_run):
    work, _ = virtual_run
    d = work / "out" / "scan"
    plan = Plan.read(d / "plan.json")
    assert plan.j == 2
    assert (d / "cleanup.done").exists() and (d / "scan_report.pdf").exists()
    assert not (d / "preproc").exists() and not (d / "preproc.vds.h5").exists()
    recon = [d / "recon" / f"recon_{j}.h5" for j in range(plan.j)]
    assert all(p.exists() for p in recon)
    with h5py.File(d / "scan_recon.h5", "r") as f:
        data = f["exchange/data"]
        assert data.is_virtual
        direct = np.concatenate([h5py.File(p, "r")["exchange/data"][()] for p in recon])
        np.testing.assert_array_equal(data[()], direct)
        assert np.isfinite(data[:, :, 32]).all()
    assert (d / "scan_recon.ome.zarr" / "zarr.json").exists()
    # The jobs' timing records follow the workflow's order: combine, then its copy and the report.
    recs = {r.job: r for r in read_jobs(d / "logs", {})}
    assert recs["combine"].end <= recs["ome_zarr"].start and recs["combine"].end <= recs["report"].start
    assert recs["report"].end <= recs["cleanup"].start


@pytest.mark.slow
def test_after_cleanup_nothing_is_scheduled(virtual_run):
    work, cfg = virtual_run
    assert nothing_to_do(work, cfg)


@pytest.mark.slow
def test_after_cleanup_a_change_reruns_from_the_stage_it_affects(virtual_run):
    work, cfg = virtual_run
    # A new export: only that copy (and the cleanup that waits for it).
    assert scheduled(work, cfg | {"output": cfg["output"] | {"tiff": True}}) == {"tiff_stack": 1, "cleanup": 1}
    # A new pyramid: the recon chunks are still there (virtual volume), so only combine and what follows it.
    assert scheduled(work, cfg | {"output": cfg["output"] | {"pyramid": [2, 4]}}) == {
        "combine": 1, "report": 1, "ome_zarr": 1, "cleanup": 1}
    # A new filter: reconstruction again; the pre-processed data are gone, so they are made again,
    # but the plan (and its centre search on the raw data) is kept.
    plan = Plan.read(work / "out" / "scan" / "plan.json")
    assert scheduled(work, cfg | {"recon": {"filter_name": "shepp"}}) == {
        "preprocess_chunk": plan.k, "vds_merge": 1, "conversion_range": 1, "recon_chunk": plan.j, "combine": 1,
        "report": 1, "ome_zarr": 1, "cleanup": 1}


def test_slurm_logs_of_a_scan_are_told_from_a_scan_named_like_its_chunk(tmp_path):
    """Scans 's' and 's_1' in one output directory: 's' chunk 1 and 's_1' share the folder name 's_1';
    the rule tells them apart, so cleaning 's' removes no log of 's_1'."""
    s_chunk = touch(tmp_path / "logs/slurm/rule_recon_chunk/s_1/1.log", SLURM_OK)
    s_combine = touch(tmp_path / "logs/slurm/rule_combine/s/2.log", SLURM_OK)
    s1_combine = touch(tmp_path / "logs/slurm/rule_combine/s_1/3.log", SLURM_OK)
    s1_chunk = touch(tmp_path / "logs/slurm/rule_recon_chunk/s_1_0/4.log", SLURM_OK)
    assert successful_slurm_logs(tmp_path, "s") == [s_combine, s_chunk]
    assert successful_slurm_logs(tmp_path, "s_1") == [s1_combine, s1_chunk]
