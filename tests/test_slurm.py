"""The workflow on a real SLURM through the executor plugin (profile slurm-test).

Checked against the phantom's ground truth, SLURM's accounting records (``sacct``: the test
cluster runs slurmdbd, so the plugin reads job states with sacct, as on a production cluster) and
Snakemake's own records (its job log and ``.snakemake/metadata``). Needs the test cluster of
.ci/slurm (``install.sh`` and ``start.sh``, as root). Every ``snakemake`` call is wrapped in
``timeout -k``: a lost job status can make Snakemake wait forever, and it ignores SIGTERM.

Run time is dominated by the plugin's status polling, not by the jobs (see profiles/slurm-test).
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.accounting import rule_of, sacct, settled
from tests.conftest import read_only
from tests.test_audit import (
    BASE,
    LOCAL_RULES,
    SPEC,
    STAGES,
    THREADED,
    audit,
    splitting_budget,
    table,
)
from tests.workflow import fit_error, volume
from tomosnake import resources
from tomosnake.audit import parse_jobs
from tomosnake.cli import snakemake_command
from tomosnake.config import validate
from tomosnake.phantom import ground_truth, write_scan
from tomosnake.stages.plan import Plan
from tomosnake.workflow import PROFILES

RUN_LIMIT_S = 600  # per snakemake call; a run here takes about 2 minutes
# `timeout`'s exit statuses for a command it stopped: 124 (ended on SIGTERM), 137, or killed itself by the
# SIGKILL it sends its process group after -k (seen as -9)
KILLED = (124, 137, -9)
SCAN = "phantom"


def _no_controller() -> str | None:
    """Why these tests cannot run here, or None when a SLURM controller answers."""
    if shutil.which("scontrol") is None:
        return "SLURM is not installed (as root: .ci/slurm/install.sh && .ci/slurm/start.sh)"
    try:
        proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "no SLURM controller answers (scontrol ping timed out); start one with .ci/slurm/start.sh"
    if proc.returncode != 0 or " is UP" not in proc.stdout:
        return f"no SLURM controller answers ({(proc.stdout + proc.stderr).strip()}); start one with .ci/slurm/start.sh"
    return None


NO_CONTROLLER = _no_controller()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(NO_CONTROLLER is not None, reason=NO_CONTROLLER or "")]


@dataclass(frozen=True)
class SlurmRun:
    """One ``snakemake --profile slurm-test`` call: exit status, output, the plugin's run id, wall time."""

    returncode: int
    output: str
    run_id: str
    seconds: float


@dataclass(frozen=True)
class SlurmJob:
    """One job as SLURM records it; rule and wildcards from the comment the plugin gives each job."""

    job_id: str
    partition: str
    state: str
    rule: str
    wildcards: str
    cpus: int
    memory: str
    time_limit_min: int


def snakemake_slurm(work: Path, config: dict, *extra: str) -> SlurmRun:
    """Run the workflow on SLURM in ``work`` with ``config``, under ``timeout -k``."""
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = ["timeout", "-k", "10", str(RUN_LIMIT_S),
           *snakemake_command("slurm-test", {}, "--configfile", str(cfg), "--directory", str(work), *extra)]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    text = proc.stdout + proc.stderr
    run_id = re.search(r"^SLURM run ID: (\S+)", text, re.MULTILINE)
    if proc.returncode in KILLED:
        if run_id:  # leave no job of a killed run on the cluster
            subprocess.run(["scancel", f"--name={run_id.group(1)}"], check=False)
        raise AssertionError(f"snakemake ran past {RUN_LIMIT_S} s and was killed:\n{text[-4000:]}")
    assert run_id, f"not run through the SLURM executor:\n{text[-4000:]}"
    print(f"\nsnakemake --profile slurm-test {' '.join(extra)}: {seconds:.1f} s wall, exit {proc.returncode}")
    return SlurmRun(proc.returncode, text, run_id.group(1), seconds)


def _minutes(limit: str) -> int:
    """SLURM's [days-]hours:minutes:seconds or minutes:seconds as whole minutes."""
    days, _, hms = limit.rpartition("-")
    parts = [int(p) for p in hms.split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts))) + int(days or 0) * 86400
    return seconds // 60


def slurm_jobs(run: SlurmRun) -> list[SlurmJob]:
    """The run's jobs (all named with the run id) as SLURM's accounting records them, once each record is
    whole (`tests.accounting`: slurmdbd may have been down meanwhile)."""
    rows = settled(lambda: [line.split("|") for line in sacct(
        "--noheader", "--allocations", "--parsable2", "--starttime=now-2days", f"--name={run.run_id}",
        "--format=JobID,Partition,State,Comment,AllocCPUS,ReqMem,Timelimit,End").splitlines()],
        lambda row: bool(row[3]) and row[7] != "Unknown")
    jobs = []
    for job_id, partition, state, comment, cpus, memory, limit, _ in rows:
        parsed = rule_of(comment)
        assert parsed is not None and parsed[0], f"unexpected job comment {comment!r}"
        jobs.append(SlurmJob(job_id, partition, state, *parsed, int(cpus), memory, _minutes(limit)))
    return jobs


def job_records(work: Path) -> dict[str, tuple]:
    """Snakemake's record of the job that last made each output (``.snakemake/metadata`` in the output
    directory, Snakemake's working directory): output path -> (rule, start time, end time, incomplete)."""
    root = work / "out" / ".snakemake" / "metadata"
    records = {}
    for f in root.rglob("*"):
        if f.is_file():
            # Snakemake names each record by the url-safe base64 of the path, split into '@'-prefixed folders.
            name = "".join(p.lstrip("@") for p in f.relative_to(root).parts)
            meta = json.loads(f.read_text())
            records[base64.urlsafe_b64decode(name).decode()] = (
                meta["rule"], meta.get("starttime"), meta.get("endtime"), meta.get("incomplete"))
    return records


def finished_rules(run: SlurmRun) -> Counter:
    """Rules of the jobs Snakemake reports finished in this run."""
    return Counter(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", run.output, re.MULTILINE))


def config(scan: Path, work: Path, budget: int, **extra) -> dict:
    return BASE | {"input": [str(scan)], "outdir": str(work / "out"), "memory_mb": budget} | extra


def plan_of(work: Path) -> dict:
    return json.loads((work / "out" / SCAN / "plan.json").read_text())


def check_jobs(jobs: list[SlurmJob], plan: dict) -> None:
    """SLURM saw k preprocessing and j reconstruction chunk jobs, each once, and every other
    non-local rule of the scan once (vds_merge, conversion_range, combine and report among them)."""
    chunks = Counter((j.rule, j.wildcards) for j in jobs if j.rule in ("preprocess_chunk", "recon_chunk"))
    assert chunks == Counter([("preprocess_chunk", f"{SCAN}_{k}") for k in range(plan["k"])]
                             + [("recon_chunk", f"{SCAN}_{j}") for j in range(plan["j"])])
    others = Counter((j.rule, j.wildcards) for j in jobs if j.rule not in ("preprocess_chunk", "recon_chunk"))
    assert {w for _, w in others} == {SCAN} and set(others.values()) == {1}
    assert STAGES <= {r for r, _ in others} and not LOCAL_RULES & {r for r, _ in others}


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("raw") / f"{SCAN}.h5", SPEC))


@pytest.fixture(scope="module")
def budget(scan) -> int:
    return splitting_budget(scan, BASE, SPEC.center)


# ------------------------------------------------------------------------------------------ full run
@dataclass(frozen=True)
class FullRun:
    work: Path
    run: SlurmRun
    audited: subprocess.CompletedProcess
    fit: tuple[float, float]  # (normalised RMSE, gain) of its volume; later runs in `work` rewrite the volume


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, scan, budget) -> FullRun:
    """The audit, then the whole workflow on SLURM with the default partitions. Intermediates are kept
    (cleanup off) so that the fault runs below can redo the reconstruction without redoing the rest."""
    work = tmp_path_factory.mktemp("slurm")
    cfg = config(scan, work, budget, cleanup=False)
    cfg_file = work / "audit.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    audited = audit(work, "--profile", str(PROFILES / "slurm-test"), "--configfile", str(cfg_file))
    run = snakemake_slurm(work, cfg)
    vol_file = work / "out" / SCAN / f"{SCAN}_recon.h5"
    fit = fit_error(volume(vol_file), ground_truth(SPEC)) if vol_file.is_file() else (float("nan"),) * 2
    return FullRun(work, run, audited, fit)


def test_full_run_completes_with_several_chunks(full_run):
    assert full_run.run.returncode == 0, full_run.run.output[-4000:]
    plan = plan_of(full_run.work)
    assert plan["k"] >= 2 and plan["j"] >= 2, (plan["k"], plan["j"])
    finished = finished_rules(full_run.run)
    assert finished.pop("preprocess_chunk") == plan["k"] and finished.pop("recon_chunk") == plan["j"]
    # every other rule once; the plan was made by the audit just before
    assert STAGES | {"vds_merge", "all"} <= set(finished) and set(finished.values()) == {1}
    assert "plan" not in finished


def test_full_run_volume_matches_ground_truth(full_run):
    nrmse, gain = full_run.fit
    assert nrmse < 0.1, nrmse
    assert 0.9 < gain < 1.1, gain


def test_full_run_jobs_in_slurm_records(full_run, budget):
    """Each chunk and stage job went to the configured partition (default: cpu) with the plan's memory and
    its rule's threads (the audit's dry run must not cap them: see test_audit_predicted_what_was_submitted)."""
    jobs = slurm_jobs(full_run.run)
    check_jobs(jobs, plan_of(full_run.work))
    assert {j.state for j in jobs} == {"COMPLETED"}
    assert {j.partition for j in jobs} == {"cpu"}
    model = resources.model(Plan.read(full_run.work / "out" / SCAN / "plan.json"),
                            validate(yaml.safe_load((full_run.work / "audit.yaml").read_text())))
    for job in jobs:
        assert job.cpus == (model[job.rule].threads if job.rule in THREADED else 1), job
    # the script's budget plus the Snakemake processes every SLURM job runs (tomosnake.resources); a rule with
    # a model of its own (the VDS, a virtual combine, the report, the conversion range) what it needs instead
    heavy = [j for j in jobs if j.rule not in resources.OWN_MODEL]
    whole = math.ceil(budget + resources.beyond_budget_mb(validate(BASE)))
    assert {j.memory for j in heavy} == {f"{whole}M"}
    assert all(int(j.memory.rstrip("M")) <= whole for j in jobs if j not in heavy)


def test_audit_predicted_what_was_submitted(full_run):
    """The audit's table (made before the run) matches SLURM's records: partition, CPUs, memory, time limit."""
    audited, jobs = full_run.audited, slurm_jobs(full_run.run)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    rows = table(audited.stdout)
    predicted: Counter = Counter()
    for rule, rs in rows.items():
        for n, where, partition, threads, mem_mb, runtime, _ in rs:
            assert (where == "local") == (rule in LOCAL_RULES), (rule, where)
            if where == "SLURM":
                predicted[(rule, partition, int(threads), f"{mem_mb}M", int(runtime))] += int(n)
    assert Counter((j.rule, j.partition, j.cpus, j.memory, j.time_limit_min) for j in jobs) == predicted


# ---------------------------------- one failing chunk, then a rerun; partition names swapped in the config
SWAPPED = {"cpu_partition": "gpu", "gpu_partition": "cpu"}
FAILING = 1  # the recon chunk that fails


@dataclass(frozen=True)
class FaultRuns:
    work: Path
    failed: SlurmRun
    existed_after_failure: dict[str, bool]
    failed_log: str  # the failing chunk's log after the failure (the rerun rewrites it)
    records_before: dict[str, tuple]
    records_after_failure: dict[str, tuple]
    rerun: SlurmRun


@pytest.fixture(scope="module")
def fault_runs(full_run, scan, budget) -> FaultRuns:
    """In the full run's directory, a new reconstruction filter (Snakemake reruns the reconstruction on its
    own: params changed) with recon chunk 1 raising and no retries; then the same run without the fault and
    with cleanup on. Both with the CPU rules sent to partition gpu by the config."""
    work = full_run.work
    cfg = config(scan, work, budget, slurm=SWAPPED, recon={"filter_name": "shepp"})
    records_before = job_records(work)
    failed = snakemake_slurm(work, cfg | {"cleanup": False, "fault": {"rule": "recon", "chunk": FAILING}},
                             "--retries", "0")
    d, plan = work / "out" / SCAN, plan_of(work)
    paths = [d / "recon" / f"recon_{j}.h5" for j in range(plan["j"])] + [d / f"{SCAN}_recon.h5"]
    existed = {p.relative_to(d).as_posix(): p.is_file() for p in paths}
    failed_log = (d / "logs" / f"recon_{FAILING}.log").read_text()
    records = job_records(work)
    rerun = snakemake_slurm(work, cfg)
    return FaultRuns(work, failed, existed, failed_log, records_before, records, rerun)


def test_failed_chunk_is_reported(fault_runs):
    failed = fault_runs.failed
    assert failed.returncode != 0
    blocks = re.findall(r"^Error in rule (\w+):\n((?:    .*\n)+)", failed.output, re.MULTILINE)
    assert blocks and {(rule, f"recon/recon_{FAILING}.h5" in body) for rule, body in blocks} == {
        ("recon_chunk", True)}, failed.output[-4000:]
    assert "SLURM status is: 'FAILED'" in failed.output
    assert f"injected fault in recon chunk {FAILING}" in fault_runs.failed_log


def test_other_chunks_completed_despite_the_failure(fault_runs):
    existed = fault_runs.existed_after_failure
    # the volume of the full run is still there: combine had to wait for the missing chunk
    assert {p for p, there in existed.items() if not there} == {f"recon/recon_{FAILING}.h5"}
    states = {(j.rule, j.wildcards): j.state for j in slurm_jobs(fault_runs.failed)}
    assert states.pop(("recon_chunk", f"{SCAN}_{FAILING}")) == "FAILED"
    assert set(states.values()) == {"COMPLETED"} and {r for r, _ in states} == {"conversion_range", "recon_chunk"}
    # the other chunks exist as made again by this run, per Snakemake's records
    before, after, d = fault_runs.records_before, fault_runs.records_after_failure, fault_runs.work / "out" / SCAN
    remade = {Path(p).relative_to(d).as_posix() for p in after
              if after[p] != before.get(p) and after[p][0] == "recon_chunk"}
    others = {f"recon/recon_{j}.h5" for j in range(plan_of(fault_runs.work)["j"]) if j != FAILING}
    assert {p for p in remade if existed[p]} == others


def test_rerun_runs_only_the_failed_chunk_and_downstream(fault_runs):
    rerun, d = fault_runs.rerun, fault_runs.work / "out" / SCAN
    assert rerun.returncode == 0, rerun.output[-4000:]
    # Snakemake's job log of the rerun
    assert finished_rules(rerun) == Counter(["recon_chunk", "combine", "report", "cleanup", "all"])
    started = [j for j in parse_jobs(rerun.output, frozenset()) if j.rule == "recon_chunk"]
    assert [j.wildcards for j in started] == [{"scan": SCAN, "j": str(FAILING)}]
    # Snakemake's metadata: the outputs whose records the rerun replaced
    before, after = fault_runs.records_after_failure, job_records(fault_runs.work)
    changed = {Path(p).relative_to(d).as_posix(): after[p][0] for p in after if after[p] != before.get(p)}
    assert set(changed.values()) == {"recon_chunk", "combine", "report", "cleanup"}, changed
    assert [p for p, rule in changed.items() if rule == "recon_chunk"] == [f"recon/recon_{FAILING}.h5"]
    # SLURM's records of the rerun (cleanup is a local rule)
    assert Counter((j.rule, j.wildcards) for j in slurm_jobs(rerun)) == Counter(
        [("recon_chunk", f"{SCAN}_{FAILING}"), ("combine", SCAN), ("report", SCAN)])
    assert not list((d / "preproc").glob("chunk_*.h5"))  # cleanup ran


def test_rerun_volume_matches_ground_truth(fault_runs):
    vol = volume(fault_runs.work / "out" / SCAN / f"{SCAN}_recon.h5")
    nrmse, gain = fit_error(vol, ground_truth(SPEC))
    assert nrmse < 0.1 and 0.9 < gain < 1.1, (nrmse, gain)


def test_partitions_from_config_reach_slurm(fault_runs):
    """With slurm.cpu_partition 'gpu', every job of both runs is on partition gpu in SLURM's records."""
    jobs = slurm_jobs(fault_runs.failed) + slurm_jobs(fault_runs.rerun)
    assert jobs and {j.partition for j in jobs} == {"gpu"}
