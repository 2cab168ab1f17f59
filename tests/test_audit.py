"""`tomosnake audit`: the real planner and Snakemake's dry run on a generated scan, read back against plan.json."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import read_only
from tomosnake import preflight, resources
from tomosnake.audit import Job, ScanAudit
from tomosnake.config import deep_merge, validate
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import Plan, make_plan
from tomosnake.workflow import PROFILES

# Large enough that a budget splits it into k >= 2 and j >= 2 with the current memory models.
SPEC = PhantomSpec(n_proj=360, n_rows=32, n_cols=128, center_offset=2.0, seed=3)
UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
LOCAL_RULES = {"plan", "cleanup"}  # the workflow's localrules
STAGES = {"vds_merge", "conversion_range", "combine", "report"}  # submitted once per scan, among others
THREADED = {"preprocess_chunk", "conversion_range", "recon_chunk"}  # the rules whose threads the plan's work sets


def splitting_budget(scan: Path, config: dict, center: float, max_mb: int = 1024) -> int:
    """The budget (whole MB) at which the planner splits ``scan`` into the fewest jobs with k >= 2 and j >= 2.

    Asks `make_plan` itself, so the choice follows the memory models as they change. k and j depend
    on shapes, enabled steps and budget only, so the search gives the centre instead of estimating it.
    """
    best: tuple[int, int] | None = None
    for mb in range(1, max_mb + 1):
        try:
            plan = make_plan(validate(deep_merge(config, {"memory_mb": mb, "recon": {"center": center}})),
                             str(scan), "scan")
        except ValueError:  # PlanError, MemoryBudgetError: budget too small
            continue
        if plan.k >= 2 and plan.j >= 2 and (best is None or plan.k + plan.j <= best[0]):
            best = (plan.k + plan.j, mb)
        if plan.k == 1 and plan.j == 1:
            break
    assert best is not None, f"no budget up to {max_mb} MB splits {scan} into k >= 2 and j >= 2: use a larger scan"
    return best[1]


def audit(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``tomosnake audit ARGS`` in ``workdir``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", *args], cwd=workdir, capture_output=True,
                          text=True, timeout=timeout, check=False)


def config_file(workdir: Path, config: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "scan.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def table(text: str) -> dict[str, list[list[str]]]:
    """The audit's job table: rule -> rows [jobs, runs on, partition, threads, mem_mb, runtime_min, gpu]."""
    rows: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 8 and cells[1].isdigit() and cells[2] in ("SLURM", "local"):
            rows.setdefault(cells[0], []).append(cells[1:8])
    return rows


def size_of(text: str, what: str) -> float:
    m = re.search(rf"{what} ([\d.]+) (\w+)", text)
    assert m, f"no '{what}' size in:\n{text}"
    return float(m.group(1)) * UNITS[m.group(2)]


# Two threads per job: a dry run would cap them at one unless the audit lifts Snakemake's --cores cap.
BASE = {"overhead_mb": 0, "threads": 2, "subchunks_per_job": 1, "report": True, "cleanup": True}


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("raw") / "phantom.h5", SPEC))


@pytest.fixture(scope="module")
def budget(scan) -> int:
    return splitting_budget(scan, BASE, SPEC.center)


@pytest.fixture(scope="module")
def audited(tmp_path_factory, scan, budget) -> tuple[subprocess.CompletedProcess, Path]:
    work = tmp_path_factory.mktemp("audit")
    cfg = config_file(work, BASE | {"input": [str(scan)], "outdir": str(work / "out"), "memory_mb": budget})
    return audit(work, "--profile", str(PROFILES / "maxiv"), "--configfile", str(cfg)), work


def test_audit_passes_and_submits_nothing(audited):
    proc, work = audited
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scan_dir = work / "out" / "phantom"
    assert (scan_dir / "plan.json").is_file()
    assert not (scan_dir / "preproc").exists() and not (scan_dir / "recon").exists()
    assert not (work / "out" / "logs" / "slurm").exists()  # the executor plugin's log directory: nothing submitted


def test_audit_shows_k_j_and_jobs_per_rule_from_the_plan(audited, budget):
    proc, work = audited
    plan_path = work / "out" / "phantom" / "plan.json"
    plan = json.loads(plan_path.read_text())
    assert plan["k"] >= 2 and plan["j"] >= 2
    assert f"k = {plan['k']} preprocessing chunks, j = {plan['j']} reconstruction chunks" in proc.stdout
    rows = table(proc.stdout)
    jobs = {rule: sum(int(r[0]) for r in rs) for rule, rs in rows.items()}
    assert jobs.pop("preprocess_chunk") == plan["k"] and jobs.pop("recon_chunk") == plan["j"]
    assert STAGES | {"vds_merge", "cleanup"} <= set(jobs) and set(jobs.values()) == {1}
    for rule, rs in rows.items():
        for _, where, partition, threads, mem_mb, runtime, gpu in rs:
            if rule in LOCAL_RULES:
                assert where == "local"
            else:
                # the package's model: a job of little work asks for one CPU (tomosnake.resources.job_threads)
                cfg = validate(BASE | {"memory_mb": budget})
                want = resources.model(Plan.read(plan_path), cfg)[rule].threads if rule in THREADED else 1
                # the whole job: the script's budget (a rule with a model of its own: what it needs) and the
                # Snakemake processes
                own = rule in resources.OWN_MODEL
                whole = math.ceil(budget + resources.beyond_budget_mb(cfg))
                mem = resources.memory_mb(cfg, rule, Plan.read(plan_path)) if own else whole
                assert mem <= whole
                assert (where, partition, threads, mem_mb, gpu) == ("SLURM", "cpu", str(want), str(mem), "0")
                assert int(runtime) >= 10


def test_core_hours_are_time_limits_times_cores(audited):
    proc, _ = audited
    rows = table(proc.stdout)
    expected = sum(int(n) * int(threads) * int(runtime) / 60 for rs in rows.values()
                   for n, where, _, threads, _, runtime, _ in rs if where == "SLURM")
    m = re.search(r"core-hours <= ([\d.]+), GPU-hours <= ([\d.]+) \(upper bounds", proc.stdout)
    assert m, proc.stdout
    assert float(m.group(1)) == pytest.approx(expected, abs=0.005)
    assert float(m.group(2)) == 0.0  # gridrec: no GPU


def test_storage_numbers_are_the_plans_estimates(audited):
    proc, work = audited
    e = json.loads((work / "out" / "phantom" / "plan.json").read_text())["estimates"]
    intermediate = e["preprocessed_bytes"] + e["recon_chunk_bytes"]
    assert size_of(proc.stdout, "intermediate") == pytest.approx(intermediate, rel=5e-3)
    # a virtual volume (the default) is the recon chunks: nothing is written beyond the intermediates
    assert size_of(proc.stdout, "final") == pytest.approx(e["recon_chunk_bytes"], rel=5e-3)
    assert size_of(proc.stdout, "peak") == pytest.approx(intermediate, rel=5e-3)
    assert re.search(r"disk: .* needed on the filesystem of .*/out, .* free: OK", proc.stdout), proc.stdout


def test_audit_counts_storage_as_preflight_does(tmp_path):
    """The audit counts the disk a scan needs as preflight does (one formula): pyramid levels and the TIFF
    and OME-Zarr copies included."""
    scan = write_scan(tmp_path / "s.h5", SPEC)
    cfg = validate({"input": [str(scan)], "recon": {"center": 64},
                    "output": {"pyramid": [2, 4], "tiff": True, "ome_zarr": True}})
    plan = make_plan(cfg, str(scan), "s")
    plan_path = tmp_path / "out" / "s" / "plan.json"
    plan_path.parent.mkdir(parents=True)
    plan_path.write_text(plan.to_json())
    st = ScanAudit("s", plan_path, cfg.output).storage()
    assert st["final"] > plan.estimates["volume_bytes"]
    assert st["peak"] == preflight.disk_need(plan, cfg, plan_path.parent)


def test_plan_failure_fails_the_audit(tmp_path, scan):
    cfg = config_file(tmp_path, BASE | {"input": [str(scan)], "outdir": str(tmp_path / "out"), "memory_mb": 1})
    proc = audit(tmp_path, "--profile", str(PROFILES / "maxiv"), "--configfile", str(cfg))
    assert proc.returncode == 1
    # Caught by the workflow's preflight (the planner run at parse time) or by the plan job itself.
    assert "the run cannot start" in proc.stdout
    assert "config key 'memory_mb'" in proc.stdout  # the planner's message names the key to change


@pytest.fixture
def small_filesystem(tmp_path) -> Path:
    """A 1 MiB tmpfs: room for the plan, not for the scan's data."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_too_small_filesystem_fails_the_audit(tmp_path, scan, budget, small_filesystem):
    outdir = small_filesystem / "out"
    cfg = BASE | {"input": [str(scan)], "outdir": str(outdir), "memory_mb": budget}
    profile = ("--profile", str(PROFILES / "maxiv"))
    # The workflow's own preflight check stops Snakemake at once; the audit passes its verdict on.
    proc = audit(tmp_path / "a", *profile, "--configfile", str(config_file(tmp_path / "a", cfg)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the run cannot start" in proc.stdout and f"config key 'outdir': {outdir} has" in proc.stdout
    # With `disk_check: false` (issue 13.4) the plan is made and the audit does not compare space either.
    unchecked = config_file(tmp_path / "b", cfg | {"disk_check": False})
    proc = audit(tmp_path / "b", *profile, "--configfile", str(unchecked))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (outdir / "phantom" / "plan.json").is_file()
    assert "disk: not checked (config key 'disk_check' is false)" in proc.stdout
    assert "NOT ENOUGH SPACE" not in proc.stdout


def test_gpu_count_from_gpu_or_gres():
    def job(**resources: str) -> Job:
        return Job("r", {}, 1, resources, (), False)

    assert job(gpu="2").gpus == 2
    assert job(gres="gpu:1").gpus == 1
    assert job(gres="gpu:a100:4").gpus == 4
    assert job().gpus == 0
