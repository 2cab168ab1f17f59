"""A plain ``snakemake --cores 2`` (no profile) against ``--profile local`` on the issue's 720 x 64 x 1024 scan.

    .venv/bin/python benchmarks/no_profile.py [--repeat 2] [--workdir bench-no-profile]

Each run starts from an empty output directory, from the repository root (where Snakemake finds the top-level
Snakefile), with the user's profiles out of reach (an empty XDG_CONFIG_HOME): the plain run gets nothing but its
own arguments. The workflow runs every job in Snakemake's own process either way (tomosnake.jobs.
run_jobs_in_this_process), so the two should take the same time; before, the plain run started a Snakemake
per job (26 s against 8.5 s in issue 23). Prints the wall seconds of each run and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.workflow import PROFILES, WORKFLOW_DIR

SHAPE = (720, 64, 1024)  # projections, rows, columns (issue 23's scan)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=WORKFLOW_DIR, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default="bench-no-profile")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    scan = work / "scan.h5"
    if not scan.exists():
        work.mkdir(parents=True, exist_ok=True)
        write_scan(scan, PhantomSpec(n_proj=SHAPE[0], n_rows=SHAPE[1], n_cols=SHAPE[2]))
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "xdg")}
    base = [sys.executable, "-m", "snakemake", "--cores", "2"]
    runs: dict[str, list[float]] = {"no profile": [], "--profile local": []}
    for _ in range(args.repeat):
        for name, extra in (("no profile", []), ("--profile local", ["--profile", str(PROFILES / "local")])):
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            runs[name].append(timed([*base, *extra, "--config", f"input={scan}", f"outdir={out}"], env))
    for name, times in runs.items():
        print(f"{name:>16}: " + ", ".join(f"{t:.1f} s" for t in times))
    ratio = statistics.median(runs["no profile"]) / statistics.median(runs["--profile local"])
    print(f"no profile / --profile local (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
