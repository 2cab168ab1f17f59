"""A run's state lives in its output directory, which is also Snakemake's working directory.

The main Snakemake process (`enter`, called while the Snakefile is parsed):

- resolves every path of the config against the directory it was started from, takes an exclusive
  ``flock`` on ``<outdir>/.tomosnake/lock`` (the kernel releases it when the process dies, so a
  crashed run never leaves a stale lock; a second run into the same outdir stops with one line) and
  removes Snakemake's own lock files, stale by then;
- writes the resolved config to ``<outdir>/.tomosnake/config.json`` and hands jobs only that file's
  path, in the environment (``TOMOSNAKE_RUN_CONFIG``; sbatch exports it). Snakemake would otherwise put
  every ``--config`` value and config file path into each job's command line, which the SLURM executor
  runs through a shell (``sbatch --wrap="..."``), unquoted for ``$``, backticks and backslashes;
- gives each raw file a safe name, ``<outdir>/.tomosnake/inputs/<scan>.h5``, a symlink; jobs open the
  real file (`real_input`);
- writes each scan's identity file, ``<outdir>/.tomosnake/inputs/<scan>.id.json``: the content
  fingerprints (`tomosnake.io.fingerprint`) of every file the scan is read from, rewritten only when
  one changes. The rules depend on it instead of the raw files, so Snakemake's date comparison sees a
  replaced input whatever its date (``cp -p``, ``rsync -a``) and nothing when an input is only touched
  (it compares dates, and checksums only for files under 1 MB);
- makes the outdir Snakemake's working directory and the directory jobs start in, so ``.snakemake/``,
  relative ``--slurm-logdir`` logs and the plan all belong to it, whatever directory the run started in.

A path that no executor can carry (braces are Snakemake wildcards; quotes, ``$``, backticks, backslashes
and control characters reach a shell unquoted) is refused with one line before anything runs.
Job processes call `job_config`, which reads the resolved config back.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from tomosnake.io import atomic
from tomosnake.io.fingerprint import content_fingerprint
from tomosnake.config import load
from tomosnake.preflight import scans
from tomosnake.workflow import WORKFLOW_DIR

STATE = ".tomosnake"
CONFIG_ENV = "TOMOSNAKE_RUN_CONFIG"
# What a path may not hold to pass through Snakemake and a cluster executor's shell.
UNCARRIABLE = re.compile(r"[{}'\"$`\\\x00-\x1f\x7f]")
# What sys.executable and the workflow's folder may hold: the executor puts the interpreter unquoted.
PLAIN_PATH = re.compile(r"[\w./+@%:,=~-]+")
_held: list[int] = []  # the lock's file descriptor, open for the life of the main process


class OutdirError(Exception):
    """The output directory cannot be used; the text is one line."""


def _why_uncarriable(path: str) -> str | None:
    bad = sorted(set(UNCARRIABLE.findall(path)))
    return None if not bad else f"holds {' '.join(map(repr, bad))}"


def resolve(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The config with the .tori merged underneath and every file path absolute (relative to ``base``)."""
    cfg: dict[str, Any] = json.loads(json.dumps(dict(raw)))
    if cfg.get("tori"):
        from tomosnake.io import tori

        cfg["tori"] = str(base / cfg["tori"])
        cfg = tori.under(cfg["tori"], cfg)

    def absolute(p: str) -> str:
        return os.path.abspath(base / os.path.expanduser(p))

    inputs = cfg.get("input") or []
    if isinstance(inputs, str):  # --config input=a.h5,b.h5
        inputs = [p for p in (s.strip() for s in inputs.split(",")) if p]
    cfg["input"] = [absolute(p) for p in inputs]
    cfg["outdir"] = absolute(str(cfg.get("outdir", "results")))
    stitch = cfg.get("stitch") or {}
    if stitch.get("inputs"):
        stitch["inputs"] = [absolute(p) for p in stitch["inputs"]]
    for key in ("flat_file", "dark_file"):
        if (cfg.get("datasets") or {}).get(key):
            cfg["datasets"][key] = absolute(cfg["datasets"][key])
    return cfg


def check_carriable(outdir: str) -> None:
    """Refuse an output directory or installation that Snakemake or a cluster executor cannot carry."""
    why = _why_uncarriable(outdir)
    if why:
        raise OutdirError(f"config key 'outdir': {outdir!r} {why}: Snakemake reads braces as wildcards and the "
                          "SLURM executor passes paths through a shell; choose an output directory without them")
    for what, path in (("the Python interpreter", sys.executable), ("the workflow", str(WORKFLOW_DIR))):
        if not PLAIN_PATH.fullmatch(path):
            raise OutdirError(f"{what} is installed under {path!r}, which the SLURM executor puts into job commands "
                              "unquoted; install it under a path of letters, digits and ./_-+@%:,=~ only")


def lock(outdir: Path) -> None:
    """Hold an exclusive lock on ``outdir`` for the life of this process, or fail with one line."""
    state = outdir / STATE
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 400).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise OutdirError(f"config key 'outdir': {outdir} is in use by another run ({holder}); wait for it to end "
                          "or stop it, then run the same command again") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started in {os.getcwd()}".encode())
    _held.append(fd)
    # Snakemake's own lock files can only be stale now: no other run holds this outdir.
    for f in (outdir / ".snakemake" / "locks").glob("*.lock"):
        f.unlink(missing_ok=True)


def input_alias(scan: str) -> str:
    """The safe name, relative to the outdir, of a scan's raw file (a stitched scan's first file)."""
    return f"{STATE}/inputs/{scan}.h5"


def _link(alias: Path, target: str) -> None:
    """Point ``alias`` at ``target``; an unchanged link is kept."""
    if alias.is_symlink() and os.readlink(alias) == target:
        return
    alias.parent.mkdir(parents=True, exist_ok=True)
    tmp = alias.with_name(f".{alias.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, alias)


def link_inputs(outdir: Path, scans: Mapping[str, str]) -> None:
    """Give every scan's raw file its safe name in ``outdir`` (a stitched scan's parts are read from the config)."""
    for scan, path in scans.items():
        _link(outdir / input_alias(scan), path)


def input_id(scan: str) -> str:
    """The scan's identity file, relative to the outdir (what the rules declare as their raw input)."""
    return f"{STATE}/inputs/{scan}.id.json"


def scan_files(cfg: Mapping[str, Any], raw: str) -> list[str]:
    """Every file a scan is read from: the raw file (or the stitched parts), external flats and darks."""
    stitch = cfg.get("stitch") or {}
    parts = list(stitch["inputs"]) if stitch.get("enabled") else [raw]
    datasets = cfg.get("datasets") or {}
    return parts + [p for p in (datasets.get("flat_file"), datasets.get("dark_file")) if p]


def write_input_ids(outdir: Path, cfg: Mapping[str, Any], scans: Mapping[str, str]) -> None:
    """Write each scan's identity file if its content changed (its date then tells Snakemake the input did)."""
    for scan, raw in scans.items():
        text = json.dumps([{"size": os.stat(p).st_size, "fingerprint": content_fingerprint(p)}
                           for p in scan_files(cfg, raw)], indent=1) + "\n"
        path = outdir / input_id(scan)
        if not path.is_file() or path.read_text() != text:
            atomic.write_text(path, text)


def scan_input(cfg: Any, scan: str) -> str:
    """In a job: the scan's raw file (behind its safe name in the outdir ``cfg.outdir``)."""
    return real_input(Path(cfg.outdir) / input_alias(scan))


def real_input(path: str | os.PathLike) -> str:
    """The raw file behind a safe name (HDF5 resolves a virtual dataset's sources next to the real file)."""
    return os.path.realpath(path)


def enter(workflow: Any, config: MutableMapping[str, Any]) -> None:
    """Set the main process up as the module docstring says; exit with one line on failure."""
    resolved = resolve(config, Path.cwd())
    out = Path(resolved["outdir"])
    path = out / STATE / "config.json"
    try:
        check_carriable(str(out))
        lock(out)
        atomic.write_text(path, json.dumps(resolved, indent=1, ensure_ascii=False))
        named = scans(load(resolved))
        link_inputs(out, named)
        write_input_ids(out, resolved, named)
    except OutdirError as err:
        print(f"tomosnake: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
    except OSError as err:  # a full, over-quota or read-only disk
        print(f"tomosnake: config key 'outdir': cannot write {err.filename or out}: {err.strerror or err}",
              file=sys.stderr, flush=True)
        sys.exit(1)
    os.environ[CONFIG_ENV] = str(path)
    config.clear()
    config.update(resolved)
    # Jobs get the config from the file above, never as command-line values (Snakemake 9's
    # spawn_jobs.general_args would pass both the --config values and the config file paths).
    workflow.config_settings.config_args = []
    workflow.config_settings.configfiles = []
    _work_in(workflow, out)


def _work_in(workflow: Any, out: Path) -> None:
    """Make ``out`` Snakemake's working directory and the one jobs start in (the SLURM executor submits
    with ``-D <workflow.workdir_init>`` and puts a relative ``--slurm-logdir`` there)."""
    workflow.overwrite_workdir = None  # a --directory would otherwise make workflow.workdir() a no-op
    workflow.workdir(str(out))
    workflow._workdir_init = str(out)


def job_config(workflow: Any, config: MutableMapping[str, Any]) -> None:
    """In a job: the run's resolved config, and its outdir as the working directory."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return  # loaded outside a run (e.g. to list the workflow's rules)
    config.clear()
    config.update(json.loads(Path(path).read_text()))
    workflow.overwrite_workdir = None
    workflow.workdir(config["outdir"])
