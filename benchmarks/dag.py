"""DAG cost at facility scale: ``snakemake -n`` and ``tomosnake audit`` on a sparse file of the bone scan's shape.

    .venv/bin/python benchmarks/dag.py                         # 25134 x 2584 x 16606 uint16, 43 GB per job
    .venv/bin/python benchmarks/dag.py --memory-mb 100000 --skip-audit

Writes (once, in the work folder) a DXchange file that declares the seed paper's ovine-bone scan
(2.16 TB raw) without writing its frames: HDF5 allocates chunks only when they are written, so the
file holds the angles only (a few hundred kB) and reads return the fill values. The centre is given
(``recon.center``), so planning reads no projection. Prints k, j, the jobs per rule, and the wall and
CPU seconds of the dry run and of the audit (profile maxiv, checked against MAX IV's nodes; nothing
runs but the plan).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tomosnake import cluster
from tomosnake.cli import snakemake_command
from tomosnake.phantom import write_sparse_scan
from tomosnake.workflow import PROFILES, SNAKEFILE

ENV = dict(os.environ)

BONE = (25134, 2584, 16606)  # projections, rows, columns (the seed paper's ovine bone)


# MAX IV's nodes as the seed paper describes them (500 GiB, 96 threads), for the checks and time limits:
# this machine's test cluster would refuse the bone scan's budgets, as it should.
MAXIV = {"cpu": cluster.Partition("cpu", 7 * 1440, 96, 500 * 1024, 0),
         "gpu": cluster.Partition("gpu", 7 * 1440, 96, 500 * 1024, 4)}


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str, int]:
    """Wall seconds, CPU seconds (user + system, the command and its children), output, exit status.

    CPU seconds are the figure to compare on a shared machine: wall time grows with the load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.time() - t0, cpu, proc.stdout + proc.stderr, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="bench-dag")
    parser.add_argument("--memory-mb", type=float, default=43000.0)
    parser.add_argument("--threads", type=int, default=96)
    parser.add_argument("--shape", type=int, nargs=3, default=BONE)
    parser.add_argument("--skip-audit", action="store_true")
    parser.add_argument("--profile", default="maxiv")
    parser.add_argument("--config", nargs="*", default=[], help="extra KEY=VALUE config overrides")
    args = parser.parse_args(argv)

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    scan = work / "bone.h5"
    if not scan.exists():
        write_sparse_scan(scan, tuple(args.shape))
    n_proj, n_rows, n_cols = args.shape
    config = {"input": [str(scan)], "outdir": str(work / "out"), "memory_mb": args.memory_mb,
              "threads": args.threads, "disk_check": False, "recon": {"center": n_cols / 2}}
    cfg_file = work / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(config))
    cluster.save(MAXIV, str(work / "maxiv-limits.json"))
    ENV.update({cluster.LIMITS_ENV: str(work / "maxiv-limits.json"), cluster.EXECUTOR_ENV: "slurm"})
    print(f"scan {n_proj} x {n_rows} x {n_cols} uint16 ({n_proj * n_rows * n_cols * 2 / 1e12:.2f} TB raw, "
          f"{scan.stat().st_size / 1e9:.2f} GB on disk), {args.memory_mb:g} MB per job, {args.threads} threads")
    profile = ["--profile", str(PROFILES / args.profile)]
    extra = [*profile, "--configfile", str(cfg_file), "--directory", str(work)]
    extra += ["--config", *args.config] if args.config else []
    # The plan first (a local checkpoint), as a real run's first step, so that -n sees every job.
    overrides = ["--config", *args.config] if args.config else []
    secs, cpu, out, rc = timed(snakemake_command("local", {}, "--configfile", str(cfg_file), *overrides,
                                                 "--directory", str(work), "--until", "plan", "--cores", "1"), work)
    if rc != 0:
        print(out[-3000:])
        return rc
    print(f"plan: {secs:.1f} s wall, {cpu:.1f} s CPU")
    secs, cpu, out, rc = timed([sys.executable, "-m", "snakemake", "--snakefile",
                                str(SNAKEFILE), *extra, "-n",
                                "--quiet", "rules"], work)
    if rc != 0:
        print(out[-3000:])
        return rc
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    total = counts.pop("total", sum(counts.values()))
    print(f"snakemake -n: {secs:.1f} s wall, {cpu:.1f} s CPU; {total} jobs: {counts}")
    if not args.skip_audit:
        secs, cpu, out, rc = timed([sys.executable, "-m", "tomosnake.cli", "audit", *extra], work)
        print(out[-2500:])
        print(f"tomosnake audit: {secs:.1f} s wall, {cpu:.1f} s CPU, exit {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
