"""Command line: ``tomosnake run [snakemake arguments]`` runs the workflow; ``tomosnake init [PATH]`` writes a
commented config to start from; ``tomosnake audit [snakemake arguments]`` prints what a run would submit and store,
submitting nothing; ``tomosnake demo`` runs the whole workflow on a generated scan; ``tomosnake generate`` writes
one."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tomosnake import __version__
from tomosnake.config import scan_name
from tomosnake.paths import ScanFiles
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


INTERRUPTED = "tomosnake: interrupted; run the same command again to resume"
RUN_HELP = """usage: tomosnake run [snakemake options] [--config KEY=VALUE ...] [--configfile FILE] [TARGET ...]

Runs the workflow: Snakemake with the installed workflow's Snakefile and your arguments, e.g.
  tomosnake run --profile local --config input=/data/scan_001.h5 outdir=/data/recon
  tomosnake run --profile maxiv --configfile my_scan.yaml       (tomosnake init writes one to start from)
  tomosnake run --profile local --config tori=scan.tori input=scan.h5
Targets: all (default), try_center, try_lamino. Ctrl-C stops; the same command resumes.

The workflow's keys (--config KEY=VALUE, nested keys as KEY="{sub: value}", or in a --configfile), default, meaning:
"""


def _relay(src: IO[bytes], dst: IO[bytes], quiet: threading.Event) -> None:
    """Copy ``src`` to ``dst`` until its end, dropping it while ``quiet`` is set or once ``dst`` is closed."""
    closed = False
    for chunk in iter(lambda: src.read1(65536), b""):  # type: ignore[attr-defined]
        if not (quiet.is_set() or closed):
            try:
                dst.write(chunk)
                dst.flush()
            except BrokenPipeError:  # read by a command that stopped reading (e.g. `| head`)
                closed = True


def call(cmd: list[str], cwd: Path | None = None) -> int:
    """Run ``cmd`` (a snakemake) and return its exit status, relaying its output. Ctrl-C: Snakemake, in a session of
    its own, gets one SIGINT from here, stops its jobs and releases its locks; its output from then on is dropped
    and one line says how to resume (exit 130, as a shell reports SIGINT)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    quiet = threading.Event()
    relays = [threading.Thread(target=_relay, args=(src, dst, quiet), daemon=True)
              for src, dst in ((proc.stdout, sys.stdout.buffer), (proc.stderr, sys.stderr.buffer))]
    for t in relays:
        t.start()
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C changes nothing
        quiet.set()
        proc.send_signal(signal.SIGINT)
        proc.wait()
        print(INTERRUPTED, file=sys.stderr)
        return 130
    finally:
        for t in relays:
            t.join()
    return rc


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
    rc = call(snakemake_command("local", config), cwd=work)
    if rc != 0:
        print(f"tomosnake demo: snakemake failed (exit {rc}); logs are in {work / 'results'}", file=sys.stderr)
        return rc
    files = ScanFiles.under(str(work / "results"), scan_name(scan))
    print(f"\ndone in {time.time() - start:.0f} s\n  volume: {files.volume}\n  report: {files.report}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from tomosnake.config_doc import commented_config

    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"tomosnake init: {path} exists; choose another path or add --force", file=sys.stderr)
        return 1
    path.write_text(commented_config())
    print(f"{path}: fill in 'input', then: tomosnake run --profile local --configfile {path}")
    return 0


def _run(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        from tomosnake.config_doc import help_text

        print(RUN_HELP + help_text() + "\n\nSnakemake's own options: snakemake --help (all of them are taken here).")
        return 0
    if "--version" in args:
        print(f"tomosnake {__version__}")
        return call([sys.executable, "-m", "snakemake", "--version"])
    return call(run_command(args))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. `| head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str]) -> int:
    if argv[:1] == ["audit"]:  # the rest are Snakemake's arguments, passed on untouched
        from tomosnake import audit

        return audit.main(argv[1:])
    if argv[:1] == ["run"]:
        return _run(argv[1:])
    parser = argparse.ArgumentParser(prog="tomosnake", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tomosnake {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a phantom scan and reconstruct it end to end, locally")
    demo.add_argument("--workdir", default="demo")
    demo.add_argument("--memory-mb", type=float, default=335.0, dest="memory_mb")
    demo.set_defaults(func=_demo)
    sub.add_parser("run", help="run the workflow: snakemake with the package's Snakefile, taking snakemake's "
                   "arguments (e.g. --profile local --config input=scan.h5 outdir=out)")
    init = sub.add_parser("init", help="write a commented config to start from: every key, its default and meaning")
    init.add_argument("path", nargs="?", default="config.yaml")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=_init)
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
