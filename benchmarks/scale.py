"""A multi-GB scan through the real test SLURM: throughput, IO and scheduling fractions, memory per rule.

    flock /tmp/tomosnake-slurm.lock .venv/bin/python benchmarks/scale.py              # 4.3 GB raw
    flock /tmp/tomosnake-slurm.lock .venv/bin/python benchmarks/scale.py --gb 0.3     # a quick run
    flock /tmp/tomosnake-slurm.lock .venv/bin/python benchmarks/scale.py --gb 0.5 --heavy  # every heavy correction

Generates (once, kept in the work folder) a DXchange scan of ``--gb`` GB raw, written frame-chunked a
block of projections at a time as beamlines write (an analytic phantom of 16 distinct slices, stretched
over the rows), picks the largest budget at which the plan makes at least ``--min-jobs`` chunk jobs,
and runs the workflow with ``--profile slurm-test``. While it runs, every process of every SLURM job
(found by ``SLURM_JOB_ID`` in its environment) is sampled from /proc every ``--sample`` seconds, so a
job's peak is the sum over its whole process tree: the Snakemake processes of the job plus the script.
Prints:

- raw Mpx/s over the run's wall time, per core of the machine and per allocated CPU (the seed paper's
  Table 1 gives 26-77 kpx/s per thread);
- the IO fraction (HDF5 reads and writes in the jobs' own timing records / the jobs' wall time) and the
  scheduling fraction (wall time with no job running, and time inside SLURM jobs before and after the
  script: Snakemake's start-up in each job), in Table 1's terms;
- each rule's largest peak (sampled tree, sacct MaxRSS, the Snakemake processes alone) against its --mem;
- each rule's efficiency against issue 22's targets: CPU (TotalCPU / (Elapsed x AllocCPUS), from sacct) at
  least 70 % and memory (peak / ReqMem) at least 40 %, the rule's worst job and all its jobs together
  (sums over its jobs: job-weighted).

An honest measurement: the test SLURM declares three nodes of 4 CPUs on this machine's real cores (the
tests need the three nodes: the chaos test stops one), so jobs running at once could hold more CPUs than
there are cores, and each job's Elapsed would stretch with the others' work. The run therefore gives
every job a resource ``host_cpus`` equal to its threads (``--default-resources``) and Snakemake at most
``--host-cpus`` of it at once (``--resources``; Snakemake lowers a job's count to that limit, so a job of
more threads runs alone). The default leaves one core of this machine to what a cluster runs elsewhere:
the submitting Snakemake, SLURM's daemons and their database, and this script's sampling (two 1-CPU jobs
at once on the 2 cores here gave 51-58 % CPU efficiency where one at a time gave 75-78 %). Snakemake
only counts the resource; SLURM never sees it.

A job's memory is the larger of sacct's MaxRSS and the sampled peak of its whole process tree: SLURM samples
a step's memory every 30 s (the test cluster's JobAcctGatherFrequency), so the job's srun step, a few
seconds long, shows the RSS of its first instant (~1 MB), and the SLURM plugin's job step strips any
``SLURM_ACCTG_FREQ`` before its srun. The sampled tree also counts every step at once, as the cgroup that
enforces ``--mem`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import yaml

from tomosnake.report import timings
from tomosnake.cli import snakemake_command
from tomosnake.config import validate
from tomosnake.phantom import PhantomSpec, _beam, sinogram_block
from tomosnake.stages.plan import make_plan
from tomosnake.workflow import PROFILES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' sacct client: retries while slurmdbd is down
from tests import accounting  # noqa: E402

MB = 1 << 20
HEAVY = {"preprocess": {"outlier": {"enabled": True}, "stripe": {"enabled": True},
                        "phase": {"enabled": True, "delta_beta": 1000.0}},
         "recon": {"stripe": {"enabled": True}, "ring_removal": {"enabled": True}}}
PAGE = os.sysconf("SC_PAGE_SIZE")
DISTINCT_ROWS = 16
RECORD_RULE = {"preprocess": "preprocess_chunk", "recon": "recon_chunk"}  # a timing record's stage -> its rule


def write_scan(path: Path, n_proj: int, n_rows: int, n_cols: int, block: int = 16) -> None:
    """A frame-chunked DXchange scan: counts of a 16-slice analytic phantom, each slice repeated over
    ``n_rows / 16`` rows (generating every row analytically would take longer than the run)."""
    spec = PhantomSpec(n_proj=n_proj, n_rows=DISTINCT_ROWS, n_cols=n_cols, center_offset=2.5, noise=False)
    theta = spec.theta()
    rows = np.minimum(np.arange(n_rows) * DISTINCT_ROWS // n_rows, DISTINCT_ROWS - 1)
    beam = _beam(PhantomSpec(n_rows=n_rows, n_cols=n_cols))
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        data = f.create_dataset("exchange/data", (n_proj, n_rows, n_cols), np.uint16, chunks=(1, n_rows, n_cols))
        for p0 in range(0, n_proj, block):
            p1 = min(p0 + block, n_proj)
            att = sinogram_block(spec, theta[p0:p1], np.arange(DISTINCT_ROWS))[:, rows]
            data[p0:p1] = np.clip(beam[None] * np.exp(-att) + 100, 0, 65535).astype(np.uint16)
        f["exchange/data_white"] = np.repeat((beam + 100).astype(np.uint16)[None], 10, axis=0)
        f["exchange/data_dark"] = np.full((10, n_rows, n_cols), 100, np.uint16)
        f["exchange/theta"] = theta
        f["exchange/theta"].attrs["units"] = "degrees"
    tmp.rename(path)


def budget_for(scan: Path, base: dict, min_jobs: int) -> tuple[int, int, int]:
    """The largest budget (MB, in steps of 50) whose plan has k + j >= ``min_jobs``; (budget, k, j)."""
    found = None
    for mb in range(400, 8001, 50):
        try:
            plan = make_plan(validate(base | {"memory_mb": mb}), str(scan), "scan")
        except ValueError:
            continue
        if plan.k + plan.j < min_jobs:
            break
        found = (mb, plan.k, plan.j)
    if found is None:
        raise SystemExit(f"no budget gives {min_jobs} chunk jobs: use a larger --gb or lower --min-jobs")
    return found


@dataclass
class Sampler:
    """Peak RSS per SLURM job of its whole process tree, and of its Snakemake processes alone."""

    interval: float
    peak: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wrapper_peak: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    samples: int = 0
    _job_of: dict = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _job(self, pid: str) -> tuple[str | None, bool]:
        """(SLURM job id or None, whether the process only wraps the job: the job-step Snakemake, srun,
        shells; the job itself runs in the Snakemake that srun starts, see tomosnake/jobs.py)."""
        try:
            start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except OSError:
            return None, False
        key = (pid, start)
        if key not in self._job_of:
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                return None, False
            job = next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"SLURM_JOB_ID=")), None)
            runs_job = "-m snakemake" in cmd and "--executor slurm-jobstep" not in cmd
            self._job_of[key] = (job, not runs_job)
        return self._job_of[key]

    def _once(self) -> None:
        total: dict[str, float] = defaultdict(float)
        wrapper: dict[str, float] = defaultdict(float)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            job, is_smk = self._job(pid)
            if job is None:
                continue
            try:
                rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / MB
            except OSError:
                continue
            total[job] += rss
            if is_smk:
                wrapper[job] += rss
        for job, v in total.items():
            self.peak[job] = max(self.peak[job], v)
        for job, v in wrapper.items():
            self.wrapper_peak[job] = max(self.wrapper_peak[job], v)
        self.samples += 1

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self._once()

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mb(text: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)([KMGT]?)n?c?", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"K": 1 / 1024, "": 1 / MB, "M": 1, "G": 1024, "T": 1 << 20}[m.group(2)]


def _seconds(text: str) -> float:
    days, _, hms = text.rpartition("-")
    parts = [float(p) for p in hms.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts))) + float(days or 0) * 86400


def sacct(run_id: str) -> dict[str, dict]:
    """Per SLURM job of the run: rule, wildcards, CPUs, requested MB, largest step MaxRSS (MB), elapsed s,
    TotalCPU s (the allocation's: every step's)."""
    out = accounting.sacct("--noheader", "--parsable2", "--starttime=now-1days", f"--name={run_id}",
                           "--format=JobID,Comment,AllocCPUS,ReqMem,MaxRSS,Elapsed,State,TotalCPU")
    jobs: dict[str, dict] = {}
    for line in out.splitlines():
        job_id, comment, cpus, req, maxrss, elapsed, state, total_cpu = line.split("|")
        base = job_id.split(".")[0]
        if base == job_id:
            rule, wildcards = accounting.rule_of(comment) or (comment, "")
            jobs[base] = {"rule": rule, "wildcards": wildcards, "cpus": int(cpus), "req_mb": _mb(req),
                          "maxrss_mb": None, "elapsed": _seconds(elapsed), "state": state,
                          "cpu_s": _seconds(total_cpu)}
    # the steps can be listed before their allocation: their MaxRSS once every allocation is known
    for line in out.splitlines():
        job_id, _, _, _, maxrss, _, _, _ = line.split("|")
        base = job_id.split(".")[0]
        if base != job_id and base in jobs and _mb(maxrss) is not None:
            jobs[base]["maxrss_mb"] = max(jobs[base]["maxrss_mb"] or 0.0, _mb(maxrss))
    return jobs


CPU_TARGET, MEM_TARGET = 0.70, 0.40  # issue 22


def efficiency(js: list[dict]) -> dict[str, float]:
    """A rule's CPU efficiency (TotalCPU / (Elapsed x AllocCPUS)) and memory efficiency (peak / ReqMem, the peak
    being the larger of MaxRSS and the sampled tree's): the worst job's, and over all its jobs (sums: each job
    weighted by its allocation)."""
    timed = [jb for jb in js if jb["elapsed"] > 0 and jb["cpus"]]
    sized = [jb for jb in js if jb["req_mb"]]
    peak = {id(jb): max(jb["maxrss_mb"] or 0, jb.get("sampled_mb") or 0) for jb in sized}
    nan = float("nan")
    return {
        "cpu_min": min((jb["cpu_s"] / (jb["elapsed"] * jb["cpus"]) for jb in timed), default=nan),
        "cpu_all": (sum(jb["cpu_s"] for jb in timed) / sum(jb["elapsed"] * jb["cpus"] for jb in timed)
                    if timed else nan),
        "mem_min": min((peak[id(jb)] / jb["req_mb"] for jb in sized), default=nan),
        "mem_all": sum(peak.values()) / sum(jb["req_mb"] for jb in sized) if sized else nan,
    }


def print_efficiency(by_rule: dict[str, list[dict]]) -> int:
    """The per-rule efficiency table against the targets; the number of rules below a target."""
    print(f"\nefficiency (targets: CPU >= {CPU_TARGET:.0%}, memory >= {MEM_TARGET:.0%}; min: the "
          "rule's worst job, all: its jobs together; sacct's Elapsed is in whole seconds, rounded down, so a "
          "job of a few seconds can show over 100 %)")
    print(f"{'rule':18s}{'jobs':>5s}{'CPUs':>6s}{'ReqMem':>8s}{'CPU min':>9s}{'CPU all':>9s}{'mem min':>9s}"
          f"{'mem all':>9s}")
    short = 0
    for rule, js in sorted(by_rule.items()):
        e = efficiency(js)
        cpus = sorted({jb["cpus"] for jb in js})
        below = [name for name, v, t in (("CPU", e["cpu_min"], CPU_TARGET), ("memory", e["mem_min"], MEM_TARGET))
                 if not v >= t]
        short += bool(below)
        cpus_s = "-".join(str(c) for c in (cpus[0], cpus[-1]) if c) if cpus[0] != cpus[-1] else str(cpus[0])
        print(f"{rule:18s}{len(js):5d}{cpus_s:>6s}{max(jb['req_mb'] or 0 for jb in js):8.0f}{e['cpu_min']:>9.0%}"
              f"{e['cpu_all']:>9.0%}{e['mem_min']:>9.0%}{e['mem_all']:>9.0%}"
              f"{'  below target: ' + ', '.join(below) if below else ''}")
    return short


def host_limit(host_cpus: int) -> list[str]:
    """Snakemake options that keep the CPUs allocated at once within ``host_cpus`` (see the docstring): the
    profile's default resources, and one counted per thread of each job."""
    profile = yaml.safe_load((PROFILES / "slurm-test" / "profile.yaml").read_text())
    defaults = [f"{k}={v}" for k, v in profile.get("default-resources", {}).items()]
    return ["--default-resources", *defaults, "host_cpus=threads", "--resources", f"host_cpus={host_cpus}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="bench-scale")
    parser.add_argument("--gb", type=float, default=4.3, help="raw scan size, GB (10^9 bytes)")
    parser.add_argument("--proj", type=int, default=1000)
    parser.add_argument("--cols", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-jobs", type=int, default=64)
    parser.add_argument("--host-cpus", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help="CPUs the jobs running at once may hold in all (default: this machine's cores "
                        "less one, for the submit side)")
    parser.add_argument("--sample", type=float, default=0.2, help="seconds between /proc samples")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--heavy", action="store_true", help="the heavy corrections of issue 13: outlier, "
                        "phase retrieval and stripe removal in pre-processing, stripe and ring removal in recon")
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    n_rows = math.ceil(args.gb * 1e9 / (2 * args.proj * args.cols))
    scan = work / f"scale_{args.proj}x{n_rows}x{args.cols}.h5"
    if not scan.exists():
        t0 = time.time()
        write_scan(scan, args.proj, n_rows, args.cols)
        print(f"generated {scan.name} in {time.time() - t0:.0f} s")
    raw_px = args.proj * n_rows * args.cols
    base = {"input": [str(scan)], "outdir": str(work / "out"), "threads": args.threads, "subchunks_per_job": 1,
            "max_chunk_jobs": 10_000, "cleanup": False, "report": False, "disk_check": True,
            "recon": {"center": args.cols / 2 + 2.5}}
    if args.heavy:
        base |= HEAVY | {"recon": base["recon"] | HEAVY["recon"]}
    budget, k, j = budget_for(scan, base, args.min_jobs)
    config = base | {"memory_mb": budget}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    print(f"scan {args.proj} x {n_rows} x {args.cols} uint16, {raw_px * 2 / 1e9:.2f} GB raw; budget {budget} MB "
          f"per job: k = {k}, j = {j}; at most {args.threads} threads per chunk job, {args.host_cpus} CPUs "
          "allocated at once")

    cmd = ["timeout", "-k", "10", str(args.timeout),
           *snakemake_command("slurm-test", {}, "--configfile", str(work / "config.yaml"), "--directory", str(work),
                              "--forceall", *host_limit(args.host_cpus))]
    t0 = time.time()
    with Sampler(args.sample) as sampler:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    wall = time.time() - t0
    text = proc.stdout + proc.stderr
    (work / "snakemake.log").write_text(text)
    run_id = re.search(r"^SLURM run ID: (\S+)", text, re.MULTILINE)
    if proc.returncode != 0 or run_id is None:
        if run_id and proc.returncode in (124, 137):
            subprocess.run(["scancel", f"--name={run_id.group(1)}"], check=False)
        print(text[-4000:])
        return proc.returncode or 1

    scan_dir = work / "out" / scan.stem
    benches = timings.read_benchmarks(scan_dir / "benchmarks")
    summary = timings.summarize(timings.read_jobs(scan_dir / "logs", benches, args.threads), benches, raw_px,
                                time.time())
    jobs = sacct(run_id.group(1))
    node_cpus = os.cpu_count() or 1
    alloc_cpu_s = sum(jb["cpus"] * jb["elapsed"] for jb in jobs.values())
    slurm_s = sum(jb["elapsed"] for jb in jobs.values())
    script_s = sum(r.wall for r in summary.records if r.slurm_job_id)
    print(f"\nwall {wall:.0f} s for {len(jobs)} SLURM jobs (sampled /proc {sampler.samples} times)")
    print(f"raw throughput: {raw_px / wall / 1e6:.2f} Mpx/s total, {raw_px / wall / node_cpus / 1e3:.0f} kpx/s "
          f"per core of this {node_cpus}-core machine, {raw_px / alloc_cpu_s / 1e3:.0f} kpx/s per allocated CPU "
          f"(SLURM elapsed x CPUs: {alloc_cpu_s:.0f} CPU-s); seed paper Table 1: 26-77 kpx/s per thread")
    print(f"IO fraction: {summary.io_fraction:.1%} of the jobs' script time (HDF5 reads and writes; seed 16-42 %)")
    print(f"scheduling: {summary.idle_fraction:.1%} of the wall time with no job running; "
          f"{1 - script_s / slurm_s:.1%} of the SLURM jobs' elapsed time outside the script "
          f"(Snakemake start-up in each job); seed: SLURM 0.1-2.5 %")
    by_rule: dict[str, list[dict]] = defaultdict(list)
    for job_id, jb in jobs.items():
        jb["sampled_mb"] = sampler.peak.get(job_id)
        jb["wrapper_mb"] = sampler.wrapper_peak.get(job_id)
        by_rule[jb["rule"]].append(jb)
    print(f"\n{'rule':18s}{'jobs':>5s}{'--mem MB':>10s}{'sampled':>9s}{'sacct':>8s}{'wrapper':>10s}"
          f"{'job CPU':>9s}  (largest peak, MB; job CPU: CPU / wall of its own records, the rule's lowest)")
    over = 0
    for rule, js in sorted(by_rule.items()):
        def top(key: str, js: list = js) -> str:
            vals = [jb[key] for jb in js if jb.get(key) is not None]
            return f"{max(vals):.0f}" if vals else "-"
        req = max(jb["req_mb"] or 0 for jb in js)
        worst = max((jb["sampled_mb"] or 0) for jb in js)
        over += worst > req
        flag = "  OVER" if worst > req else ""
        own = [r.cpu_s / r.wall for r in summary.records if RECORD_RULE.get(r.stage, r.stage) == rule
               and r.cpu_s is not None and r.wall > 0]
        own_s = f"{min(own):.2f}" if own else "-"
        print(f"{rule:18s}{len(js):5d}{req:10.0f}{top('sampled_mb'):>9s}{top('maxrss_mb'):>8s}"
              f"{top('wrapper_mb'):>10s}{own_s:>9s}{flag}")
    wr = [v for v in sampler.wrapper_peak.values() if v]
    if wr:
        print(f"wrapper processes per SLURM job (job-step Snakemake, srun, shells): {np.median(wr):.0f} MB "
              f"median, {max(wr):.0f} MB largest "
              f"(resources.WRAPPER_MB = {__import__('tomosnake.resources').resources.WRAPPER_MB})")
    short = print_efficiency(by_rule)
    (work / "result.json").write_text(json.dumps({"wall": wall, "raw_px": raw_px, "jobs": jobs}, default=str))
    return 1 if over or short else 0


if __name__ == "__main__":
    sys.exit(main())
