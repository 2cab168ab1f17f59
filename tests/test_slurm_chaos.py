"""Chaos on the real test SLURM (.ci/slurm, several nodes): cancelled jobs, a slurmdbd outage, a node lost.

One chain of runs of the same command (profile slurm-test, ``--retries 0`` so that a failure shows):
run n cancels a running job of the n-th rule SLURM runs (``CHAIN``: preprocess_chunk, vds_merge,
conversion_range, recon_chunk, combine, report; sacct says ``CANCELLED by 0``); each must end by itself,
non-zero, with the rule's other chunks finished (keep-going), having redone only the job the run before
lost. The run after the chain has slurmdbd stopped (sacct cannot answer) from the moment its report job
runs until the run ends or 60 s pass: it must complete on its own, redoing only the report, with a volume
bit-identical to an undisturbed (local) run's.
With snakemake-executor-plugin-slurm 2.8.0 alone, run 1 waits for ever on ``CANCELLED by 0`` and
the outage run forgets its jobs when sacct fails (tomosnake/slurm_executor.py closes both): every
``snakemake`` here runs under ``timeout -k``, so a hang fails the test instead of hanging CI.

Apart, a run whose reconstruction job's node loses its slurmd (and is marked DOWN) must end by
itself, and the same command then gives the undisturbed volume. Stopping slurmdbd or a slurmd
needs root and the daemons of .ci/slurm/start.sh; the outage and the node stop run while no other SLURM
test does (marker ``slurm_exclusive``, tests/conftest.py): another run's job records would come late.
Measured here (2 cores): the chain about 2.5 min,
the node stop about 1.5 min.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_slurm import (  # noqa: F401  (scan, budget: fixtures)
    KILLED,
    NO_CONTROLLER,
    SCAN,
    SlurmRun,
    budget,
    config,
    plan_of,
    scan,
)
from tests.accounting import rule_of, sacct, settled
from tests.workflow import run as local_run
from tests.workflow import volume
from tomosnake.cli import snakemake_command

RUN_LIMIT_S = 420  # per snakemake call; each takes about a minute here
OUTAGE_S = 60
SLURMDBD_PID = Path("/run/slurmdbd.pid")  # .ci/slurm/common.sh

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(NO_CONTROLLER is not None, reason=NO_CONTROLLER or "")]


@dataclass(frozen=True)
class Job:
    """One of a run's jobs in SLURM's accounting: rule and wildcards from the plugin's job comment."""

    job_id: str
    rule: str
    wildcards: str
    state: str
    node: str
    end: str  # "Unknown" until accounting has the job's end


def jobs_of(run_id: str) -> list[Job]:
    out = sacct("--noheader", "--allocations", "--parsable2", "--starttime=now-2days", f"--name={run_id}",
                "--format=JobID,Comment,State,NodeList,End")
    jobs = []
    for line in out.splitlines():
        job_id, comment, state, node, end = line.split("|")
        # the comment is empty until a record sent during a slurmdbd outage is complete
        parsed = rule_of(comment)
        assert parsed is not None, f"unexpected job comment {comment!r}"
        jobs.append(Job(job_id, *parsed, state, node, end))
    return jobs


def settled_jobs_of(run_id: str) -> list[Job]:
    """`jobs_of`, once accounting holds every job whole and ended (after an outage slurmctld sends its
    backlog: it took about 20 s here)."""
    return list(settled(lambda: jobs_of(run_id), lambda j: bool(j.rule) and j.end != "Unknown"))


class Run:
    """A ``snakemake --profile slurm-test`` in the background, its output in a file."""

    def __init__(self, work: Path, cfg: dict, name: str, *extra: str) -> None:
        cfg_file = work / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg))
        self.log = work / f"{name}.log"
        cmd = ["timeout", "-k", "10", str(RUN_LIMIT_S),
               *snakemake_command("slurm-test", {}, "--configfile", str(cfg_file), "--directory", str(work), *extra)]
        self.started = time.monotonic()
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)

    def run_id(self) -> str:
        while True:
            m = re.search(r"^SLURM run ID: (\S+)", self.log.read_text(), re.MULTILINE)
            if m:
                return m.group(1)
            assert self.proc.poll() is None, f"ended before submitting:\n{self.log.read_text()[-4000:]}"
            time.sleep(0.2)

    def running_job(self, rule: str) -> tuple[str, str]:
        """(job id, wildcards) of the first job of ``rule`` that SLURM shows running."""
        run_id = self.run_id()
        while self.proc.poll() is None:
            out = subprocess.run(["squeue", "--noheader", f"--name={run_id}", "--format=%i|%T|%k"],
                                 capture_output=True, text=True, check=False).stdout
            for line in out.splitlines():
                job_id, state, comment = line.split("|", 2)
                if state == "RUNNING" and comment.startswith(f"rule_{rule}_wildcards_"):
                    return job_id, comment.removeprefix(f"rule_{rule}_wildcards_")
            time.sleep(0.2)
        raise AssertionError(f"no {rule} job seen running:\n{self.log.read_text()[-4000:]}")

    def finish(self) -> SlurmRun:
        returncode = self.proc.wait(RUN_LIMIT_S + 30)
        text, seconds = self.log.read_text(), time.monotonic() - self.started
        run_id = self.run_id()
        if returncode in KILLED:
            subprocess.run(["scancel", f"--name={run_id}"], check=False)  # leave no job of a killed run
            raise AssertionError(f"snakemake ran past {RUN_LIMIT_S} s and was killed:\n{text[-4000:]}")
        print(f"\n{self.log.name}: {seconds:.1f} s wall, exit {returncode}")
        return SlurmRun(returncode, text, run_id, seconds)


def cancel(job_id: str) -> None:
    subprocess.run(["scancel", job_id], check=True)


def slurmdbd_pid() -> int | None:
    """slurmdbd's PID from its pid file, if that process is alive and is slurmdbd."""
    try:
        pid = int(SLURMDBD_PID.read_text())
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == "slurmdbd" else None
    except (OSError, ValueError):
        return None


def stop_slurmdbd() -> None:
    pid = slurmdbd_pid()
    assert pid, f"no slurmdbd at {SLURMDBD_PID}"
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.1)
    assert subprocess.run(["sacct", "-n", "-X"], capture_output=True, check=False).returncode != 0, \
        "sacct still answers with slurmdbd stopped"


def start_slurmdbd() -> None:
    if slurmdbd_pid() is None:
        subprocess.run(["slurmdbd"], check=True)  # daemonises; /etc/slurm/slurmdbd.conf
    for _ in range(300):
        if subprocess.run(["sacct", "-n", "-X"], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("sacct does not answer 30 s after slurmdbd's start")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, scan, budget) -> np.ndarray:  # noqa: F811
    """The volume of an undisturbed run of the same config, on this machine without SLURM."""
    work = tmp_path_factory.mktemp("reference")
    local_run(work, config(scan, work, budget))
    return volume(work / "out" / SCAN / f"{SCAN}_recon.h5")


# Every rule whose jobs SLURM runs, in the order the DAG reaches them: run n cancels a running job of
# CHAIN[n - 1]; the chunked rules' other jobs must finish (keep-going).
CHAIN = ["preprocess_chunk", "vds_merge", "conversion_range", "recon_chunk", "combine", "report"]
CHUNKS = {"preprocess_chunk": "k", "recon_chunk": "j"}  # the plan's count of each chunked rule's jobs


@dataclass(frozen=True)
class Cancels:
    work: Path
    cfg: dict
    reference: np.ndarray
    runs: list[SlurmRun]  # one per rule of CHAIN
    cancelled: list[tuple[str, str, str]]  # (rule, wildcards, job id) cancelled in each


@pytest.fixture(scope="module")
def cancels(tmp_path_factory, scan, budget, reference) -> Cancels:  # noqa: F811  (pytest fixtures by name)
    work = tmp_path_factory.mktemp("chaos")
    cfg = config(scan, work, budget)
    runs, cancelled = [], []
    for n, rule in enumerate(CHAIN, 1):
        run = Run(work, cfg, f"run{n}", "--retries", "0")
        job_id, wildcards = run.running_job(rule)
        cancel(job_id)
        cancelled.append((rule, wildcards, job_id))
        runs.append(run.finish())
    return Cancels(work, cfg, reference, runs, cancelled)


@dataclass(frozen=True)
class Outage:
    run: SlurmRun
    seconds: float  # how long slurmdbd was down
    ended_in_outage: bool  # the run ended while slurmdbd was down


@pytest.fixture(scope="module")
def outage(cancels) -> Outage:
    """The run after the chain: slurmdbd stopped once its report job runs, until the run ends or `OUTAGE_S`
    pass."""
    if os.geteuid() != 0 or slurmdbd_pid() is None:
        pytest.skip("stopping slurmdbd needs root and the daemons of .ci/slurm/start.sh")
    run = Run(cancels.work, cancels.cfg, f"run{len(CHAIN) + 1}", "--retries", "0")
    run.running_job("report")
    stop_slurmdbd()
    down = time.monotonic()
    try:
        while run.proc.poll() is None and time.monotonic() - down < OUTAGE_S:
            time.sleep(0.5)
        ended_in_outage = run.proc.poll() is not None
    finally:
        seconds = time.monotonic() - down
        start_slurmdbd()
    return Outage(run.finish(), seconds, ended_in_outage)


def _chunks(jobs: list[Job], rule: str) -> dict[str, str]:
    return {j.wildcards: j.state for j in jobs if j.rule == rule}


@pytest.mark.parametrize("n", range(len(CHAIN)), ids=CHAIN)
def test_a_cancelled_job_fails_the_run_which_redoes_only_what_failed_before(cancels, n):
    """Run n+1 ends by itself, non-zero, on its cancelled CHAIN[n] job (sacct: ``CANCELLED by <uid>``), the
    rule's other chunks finished; it redid only the job the previous run lost, and ran nothing beyond."""
    run, jobs = cancels.runs[n], settled_jobs_of(cancels.runs[n].run_id)
    rule, wildcards, job_id = cancels.cancelled[n]
    assert run.returncode != 0, run.output[-4000:]
    assert re.search(rf"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED by \d+'", run.output), \
        run.output[-4000:]
    states = _chunks(jobs, rule)
    assert states.pop(wildcards).startswith("CANCELLED")
    others = plan_of(cancels.work)[CHUNKS[rule]] - 1 if rule in CHUNKS else 0
    assert len(states) == others and set(states.values()) <= {"COMPLETED"}, states
    if n:
        before, lost, _ = cancels.cancelled[n - 1]
        assert _chunks(jobs, before) == {lost: "COMPLETED"}
    assert {j.rule for j in jobs} == {rule, *CHAIN[max(n - 1, 0):n]}  # nothing downstream of the lost job


def test_jobs_spread_across_nodes(cancels):
    """Jobs of runs 1 to 3 ran on several nodes (one slurmd per node on this host)."""
    nodes = {j.node for run in cancels.runs for j in jobs_of(run.run_id) if j.state == "COMPLETED"}
    assert len(nodes) >= 2, nodes


@pytest.mark.slurm_exclusive
def test_run_carries_on_through_a_slurmdbd_outage(cancels, outage):
    run = outage.run
    assert run.returncode == 0, run.output[-4000:]
    # it ended on its own while sacct could not answer, or went on through the whole outage
    assert outage.ended_in_outage or outage.seconds >= OUTAGE_S
    jobs = settled_jobs_of(run.run_id)
    assert {j.state for j in jobs} == {"COMPLETED"}
    # only the cancelled report
    assert Counter((j.rule, j.wildcards) for j in jobs) == Counter([("report", SCAN)])


@pytest.mark.slurm_exclusive
def test_volume_after_the_chaos_is_bit_identical(cancels, outage):
    assert outage.run.returncode == 0
    vol = volume(cancels.work / "out" / SCAN / f"{SCAN}_recon.h5")
    assert vol.dtype == cancels.reference.dtype and vol.shape == cancels.reference.shape
    assert vol.tobytes() == cancels.reference.tobytes()


# ------------------------------------------------------------------------------- a node stopped mid-run
@dataclass(frozen=True)
class NodeStop:
    node: str
    job_id: str  # the reconstruction job that was running on it
    run: SlurmRun  # the run during which the node stopped (the profile's one retry allowed)
    rerun: SlurmRun
    work: Path


def slurmd_pid(node: str) -> int:
    pid = int(Path(f"/run/slurmd-{node}.pid").read_text())  # .ci/slurm/common.sh
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmd"
    return pid


def node_state(node: str) -> str:
    return subprocess.run(["sinfo", "--noheader", "--Node", f"--nodes={node}", "--format=%t"],
                          capture_output=True, text=True, check=False).stdout.split("\n")[0].strip()


@pytest.fixture(scope="module")
def node_stop(tmp_path_factory, scan, budget) -> NodeStop:  # noqa: F811
    """The node running a reconstruction job loses its slurmd and is marked DOWN (as slurmctld does once
    SlurmdTimeout passes; not waited for here); it comes back after the run, and the same command reruns."""
    if os.geteuid() != 0 or not Path("/run/slurmd-n1.pid").exists():
        pytest.skip("stopping a node needs root and the several nodes of .ci/slurm/start.sh")
    work = tmp_path_factory.mktemp("node")
    cfg = config(scan, work, budget)
    run = Run(work, cfg, "stopped")
    job_id, _ = run.running_job("recon_chunk")
    node = subprocess.run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%N"],
                          capture_output=True, text=True, check=True).stdout.strip()
    try:
        os.kill(slurmd_pid(node), signal.SIGKILL)
        subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=tomosnake chaos test"],
                       check=True)
        stopped = run.finish()
    finally:
        subprocess.run(["slurmd", "-N", node], check=True)  # back (ReturnToService=2 takes a DOWN node back)
        for _ in range(300):
            if node_state(node) in ("idle", "mix", "alloc"):
                break
            time.sleep(0.1)
        else:
            subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], check=False)
    rerun = Run(work, cfg, "rerun").finish()
    return NodeStop(node, job_id, stopped, rerun, work)


@pytest.mark.slurm_exclusive
def test_stopped_node_fails_its_job_and_the_run_ends(node_stop):
    """The job on the stopped node ends NODE_FAIL; Snakemake's one retry goes to another node, or the run ends
    failed: either way it ends by itself (Run.finish fails a run killed by its time limit)."""
    jobs = settled_jobs_of(node_stop.run.run_id)
    lost = next(j for j in jobs if j.job_id == node_stop.job_id)
    assert lost.state == "NODE_FAIL" and lost.node == node_stop.node, lost
    assert f"SLURM-job '{node_stop.job_id}' failed" in node_stop.run.output


@pytest.mark.slurm_exclusive
def test_rerun_after_a_stopped_node_is_bit_identical(node_stop, reference):
    assert node_stop.rerun.returncode == 0, node_stop.rerun.output[-4000:]
    vol = volume(node_stop.work / "out" / SCAN / f"{SCAN}_recon.h5")
    assert vol.dtype == reference.dtype and vol.tobytes() == reference.tobytes()
