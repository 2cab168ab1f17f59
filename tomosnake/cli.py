"""Command line: ``tomosnake demo`` runs the whole workflow on a generated scan; ``tomosnake generate`` writes one;
``tomosnake run [snakemake arguments]`` runs the package's workflow; ``tomosnake audit [snakemake arguments]``
prints what a run would submit and store, submitting nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from tomosnake.config import scan_name
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.workflow import PROFILES, SNAKEFILE

DEMO_SPEC = PhantomSpec(n_proj=360, n_rows=32, n_cols=256, center_offset=3.5)


def snakemake_command(profile: str, config: dict[str, object], *extra: str) -> list[str]:
    """A ``snakemake`` call of the package's workflow with ``--config`` overrides."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--profile", str(PROFILES / profile)]
    if config:
        cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    return cmd + list(extra)


def run_command(args: list[str]) -> list[str]:
    """``snakemake`` with the package's Snakefile and ``args`` passed on; ``--profile NAME`` also finds the
    package's profiles by name where Snakemake would not (none of that name in the working or user directory)."""
    from tomosnake.profiles import user_profile_dir

    args = list(args)
    for i, arg in enumerate(args[:-1]):
        name = args[i + 1]
        if arg == "--profile" and (PROFILES / name).is_dir() and not Path(name).exists() \
                and not (user_profile_dir() / name).exists():
            args[i + 1] = str(PROFILES / name)
    return [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *args]


def _generate(args: argparse.Namespace) -> int:
    spec = PhantomSpec(n_proj=args.proj, n_rows=args.rows, n_cols=args.cols, center_offset=args.center_offset,
                       theta_end=args.theta_end, seed=args.seed)
    print(write_scan(args.path, spec))
    return 0


def _demo(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    scan = work / "phantom.h5"
    if not scan.exists():
        print(f"generating a {DEMO_SPEC.n_proj} x {DEMO_SPEC.n_rows} x {DEMO_SPEC.n_cols} phantom scan: {scan}")
        write_scan(scan, DEMO_SPEC)
    # Budgets just above the interpreter's allowance (overhead_mb 300), so that the small demo scan is
    # really split: 2 pre-processing and 4 reconstruction jobs.
    config = {"input": str(scan), "outdir": str(work / "results"), "memory_mb": args.memory_mb,
              "preprocess_memory_mb": args.memory_mb - 15, "subchunks_per_job": 4, "cleanup": False}
    start = time.time()
    rc = subprocess.call(snakemake_command("local", config), cwd=work)
    if rc != 0:
        print(f"tomosnake demo: snakemake failed (exit {rc}); logs are in {work / 'results'}", file=sys.stderr)
        return rc
    name = scan_name(scan)
    print(f"\ndone in {time.time() - start:.0f} s\n  volume: {work / 'results' / name / (name + '_recon.h5')}"
          f"\n  report: {work / 'results' / name / (name + '_report.pdf')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["audit"]:  # the rest are Snakemake's arguments, passed on untouched
        from tomosnake import audit

        return audit.main(argv[1:])
    if argv[:1] == ["run"]:
        return subprocess.call(run_command(argv[1:]))
    parser = argparse.ArgumentParser(prog="tomosnake", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a phantom scan and reconstruct it end to end, locally")
    demo.add_argument("--workdir", default="demo")
    demo.add_argument("--memory-mb", type=float, default=335.0, dest="memory_mb")
    demo.set_defaults(func=_demo)
    sub.add_parser("run", help="run the workflow: snakemake with the package's Snakefile, taking snakemake's "
                   "arguments (e.g. --profile local --config input=scan.h5 outdir=out)")
    sub.add_parser("audit", help="plan the scans and print jobs, partitions, core/GPU-hours and disk needed; "
                   "exit 1 if a scan cannot run (takes the run's snakemake arguments, e.g. --profile maxiv)")
    gen = sub.add_parser("generate", help="write a synthetic DXchange scan of a 3D Shepp-Logan phantom")
    gen.add_argument("path")
    gen.add_argument("--proj", type=int, default=180)
    gen.add_argument("--rows", type=int, default=16)
    gen.add_argument("--cols", type=int, default=128)
    gen.add_argument("--center-offset", type=float, default=0.0)
    gen.add_argument("--theta-end", type=float, default=180.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_generate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
