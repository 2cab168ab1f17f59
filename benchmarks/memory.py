"""Peak memory of every job against the per-job budget, on a scan several times larger than it.

    .venv/bin/python benchmarks/memory.py                       # 400 MB budget, 300 MB overhead
    .venv/bin/python benchmarks/memory.py --memory-mb 300 --overhead-mb 200 --workdir bench-mem-300
    .venv/bin/python benchmarks/memory.py --heavy --memory-mb 520 --factor 0.15 --workdir bench-mem-heavy

Generates a phantom scan (raw size at least ``--factor`` times ``--memory-mb``; kept in the
work folder and reused), runs the whole workflow locally with that budget, and prints each
job's peak resident memory beside the budget. ``memory_mb`` is the whole job's budget, the
interpreter included; ``overhead_mb`` of it is reserved for the interpreter and libraries,
whose real share is measured and printed too. Exits 1 if any job exceeds the budget.

Every job runs in a process of its own here (``TOMOSNAKE_JOB_PROCESS=1``, as under ``--sdm conda``;
a local run otherwise runs its jobs in Snakemake's process, see `tomosnake.jobs`), so that each
job's memory is its own. Two figures per job: ``peak`` is the kernel's high-water mark (VmHWM)
that each job's Python process reads at exit, through a ``sitecustomize`` module put on the jobs'
PYTHONPATH; ``sampled`` is Snakemake's own benchmark file (max_rss, sampled every 0.5 s, so it
can miss short peaks; only rules with a ``benchmark:`` have one), which here also holds the
Snakemake process that waits for the job (about 150 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

from tomosnake.cli import snakemake_command
from tomosnake.config import scan_name
from tomosnake.jobs import PROCESS_ENV
from tomosnake.phantom import PhantomSpec, read_spec, write_scan

MB = 1 << 20
# Written into the jobs' PYTHONPATH: each Python process records its peak RSS and, for a job, its rule.
HOOK = '''\
import atexit, json, os, sys


def _record():
    # a job's process: python -c BOOT <package folder> <job file> (tomosnake.jobs); the job file is
    # removed only after the process has exited
    if len(sys.argv) != 3 or not sys.argv[2].endswith(".job.json"):
        return
    with open(sys.argv[2]) as f:
        job = json.load(f)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    with open(os.environ["TOMOSNAKE_RSS_LOG"], "a") as f:
        f.write(json.dumps({"rule": job["rule"], "wildcards": job["wildcards"], "peak_kib": hwm}) + "\\n")


atexit.register(_record)
'''
# What every job process imports before it touches data (the scripts' modules).
IMPORTS = ("import tomosnake.jobs, tomosnake.stages.plan, tomosnake.stages.preprocess_chunk, "
           "tomosnake.stages.recon_chunk, tomosnake.stages.combine, tomosnake.report.pdf, tomosnake.stages.cleanup, "
           "tomosnake.io.vds")


def interpreter_mb() -> float:
    """Peak RSS of a Python process that only imports what the jobs import."""
    code = IMPORTS + "\nprint(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out) / 1024


def scan_spec(memory_mb: float, factor: float, n_proj: int, n_cols: int) -> PhantomSpec:
    """A phantom whose raw uint16 data is at least ``factor`` times the budget; rows carry the size
    (they add jobs, not per-job memory)."""
    n_rows = math.ceil(factor * memory_mb * MB / (n_proj * n_cols * 2))
    return PhantomSpec(n_proj=n_proj, n_rows=n_rows, n_cols=n_cols, center_offset=3.0, seed=7)


def _reusable(old: PhantomSpec, new: PhantomSpec) -> bool:
    """A scan already in the work folder serves if it differs only by having more rows."""
    return old.n_rows >= new.n_rows and replace(old, n_rows=new.n_rows) == new


def sampled_rss(scan_dir: Path) -> dict[str, float]:
    """Snakemake's sampled max_rss (MB) per benchmark file stem, e.g. 'recon_3'."""
    out = {}
    for tsv in sorted((scan_dir / "benchmarks").glob("*.tsv")):
        with tsv.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        if row["max_rss"] not in ("", "NA"):
            out[tsv.stem] = float(row["max_rss"])
    return out


def _bench_key(rule: str, wildcards: dict) -> str:
    names = {"preprocess_chunk": "preprocess", "recon_chunk": "recon"}
    index = wildcards.get("k", wildcards.get("j"))
    return names.get(rule, rule) + (f"_{index}" if index is not None else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="bench-memory")
    parser.add_argument("--memory-mb", type=float, default=400.0)
    parser.add_argument("--overhead-mb", type=float, default=300.0)
    parser.add_argument("--factor", type=float, default=3.0, help="raw scan size / memory budget (>= 3)")
    parser.add_argument("--proj", type=int, default=360)
    parser.add_argument("--cols", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subchunks-per-job", type=int, default=8)
    parser.add_argument("--heavy", action="store_true", help="stripe, outlier and phase in preprocessing, ring "
                        "and stripe removal in reconstruction (issue 13's case)")
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    spec = scan_spec(args.memory_mb, args.factor, args.proj, args.cols)
    scan = work / "scan.h5"
    if scan.exists() and _reusable(read_spec(scan), spec):
        spec = read_spec(scan)
    else:
        t0 = time.time()
        write_scan(scan, spec)
        print(f"generated {scan} in {time.time() - t0:.0f} s")
    raw_mb = scan.stat().st_size / MB
    print(f"scan {spec.n_proj} x {spec.n_rows} x {spec.n_cols} uint16: {raw_mb:.0f} MB on disk, "
          f"{raw_mb / args.memory_mb:.1f} x the {args.memory_mb:g} MB budget")

    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(HOOK)
    rss_log = work / "rss.jsonl"
    rss_log.unlink(missing_ok=True)
    out = work / "out"
    config = {"input": [str(scan)], "outdir": str(out), "memory_mb": args.memory_mb,
              "overhead_mb": args.overhead_mb, "threads": args.threads,
              "subchunks_per_job": args.subchunks_per_job, "cleanup": False}
    if args.heavy:
        config |= {"preprocess": {"stripe": {"enabled": True}, "outlier": {"enabled": True},
                                  "phase": {"enabled": True, "filter": "generalised"},
                                  "minus_log_after_phase": True},
                   "recon": {"stripe": {"enabled": True}, "ring_removal": {"enabled": True}}}
    cfg_file = work / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path, "TOMOSNAKE_RSS_LOG": str(rss_log), PROCESS_ENV: "1"}
    cmd = snakemake_command("local", {}, "--configfile", str(cfg_file), "--directory", str(work),
                            "--cores", str(args.threads), "--forceall")
    t0 = time.time()
    proc = subprocess.run(cmd, check=False, cwd=work, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
        return proc.returncode

    scan_dir = out / scan_name(scan)
    plan = json.loads((scan_dir / "plan.json").read_text())
    sampled = sampled_rss(scan_dir)
    base = interpreter_mb()
    print(f"workflow: {wall:.0f} s, k = {plan['k']}, j = {plan['j']}, tile {plan['tile']}, "
          f"{plan['slices_per_load']} slices per recon load, {args.threads} threads")
    print(f"interpreter + imports of a job: {base:.0f} MB (overhead_mb = {args.overhead_mb:g})")
    print(f"{'job':24s} {'peak MB':>8s} {'sampled':>8s} {'budget':>7s}")
    worst = 0.0
    records = [json.loads(line) for line in rss_log.read_text().splitlines()]
    for r in sorted(records, key=lambda r: (r["rule"], int(r["wildcards"].get("k", r["wildcards"].get("j", 0))))):
        key = _bench_key(r["rule"], r["wildcards"])
        peak = r["peak_kib"] / 1024
        worst = max(worst, peak)
        flag = "" if peak <= args.memory_mb else "  OVER BUDGET"
        s = f"{sampled[key]:.0f}" if key in sampled else "-"
        print(f"{key:24s} {peak:8.0f} {s:>8s} {args.memory_mb:7.0f}{flag}")
    print(f"largest peak {worst:.0f} MB of {args.memory_mb:g} MB; data share of the largest job "
          f"{worst - base:.0f} MB of {args.memory_mb - args.overhead_mb:g} MB planned")
    return 0 if worst <= args.memory_mb else 1


if __name__ == "__main__":
    sys.exit(main())
