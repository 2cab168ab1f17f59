"""How a rule's job runs: in the Snakemake process that executes it, or in a process of its own.

Every rule ends in ``run: run_job("<entry>", locals(), config)``; the entry is the function ``run`` of
the workflow's ``scripts/<entry>.py`` (`tomosnake.workflow.script`). A job runs in the Snakemake process
that executes it (the local run's main process, or the SLURM job's own Snakemake): a fresh interpreter
importing numpy, h5py and the package per job cost 0.35-0.5 s, more than several stages' work on a small
scan. Jobs of one process run one at a time (logging and timing records are per process), which costs
nothing where each job uses all the cores it was given.

A job runs in a process of its own where its code must run in a conda environment (``--sdm conda``:
``run:`` code is not run in the rule's ``conda:`` env, only its shell commands are) or where
``TOMOSNAKE_JOB_PROCESS=1`` asks for it (tests, per-job memory in ``benchmarks/memory.py``): the
job's arguments go to a JSON file beside its log, and `main` runs the job as that process's only work.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomosnake import config as tconfig
from tomosnake import workflow
from tomosnake.config import TomoConfig
from tomosnake.io.scan import ScanError
from tomosnake.report import timings
from tomosnake.resources import JOB_ENV

PROCESS_ENV = "TOMOSNAKE_JOB_PROCESS"  # "1": every job in a process of its own (tests, debugging)
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s pid %(process)d: %(message)s"  # pid: which process ran the job
_ONE_AT_A_TIME = threading.Lock()
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (the environment's MALLOC_MMAP_THRESHOLD_)


class Files(list):
    """A job's input, output or log files: a list whose named items are also attributes (as Snakemake's)."""

    def __init__(self, items: Iterable[str], names: Mapping[str, tuple[int, int | None]] | None = None) -> None:
        super().__init__(items)
        self._names = dict(names or {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._names:
            raise AttributeError(name)
        start, end = self._names[name]
        return self[start] if end is None else Files(self[start:end])

    @classmethod
    def of(cls, named: Any) -> Files:
        """Copy of a Snakemake Namedlist (its items as strings, its names kept)."""
        names = {k: (v[0], v[1]) for k, v in getattr(named, "_names", {}).items()}
        return cls([str(x) for x in named], names)


@dataclass
class Job:
    """What an entry gets: the rule's name, files, wildcards, threads and the run's config (the entries read
    their parameters from it; the rules' ``params`` only tell Snakemake when to rerun)."""

    rule: str
    input: Any
    output: Any
    log: Any
    wildcards: Any
    threads: int
    cfg: TomoConfig

    def cfg_on_its_threads(self) -> TomoConfig:
        """The config with the job's threads (`tomosnake.resources.job_threads`, or fewer under --cores) as
        ``threads``: for the stages that read them from the config (the reconstruction's `Plan.threads`)."""
        return self.cfg.model_copy(update={"threads": min(self.cfg.threads, self.threads)})


def run_job(entry: str, ctx: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Run the job of a rule's ``run:`` block (``ctx``: its locals) with ``entry``'s function."""
    if ctx.get("conda_env") or os.environ.get(PROCESS_ENV) == "1":
        _run_in_own_process(entry, ctx, config)
        return
    job = Job(rule=ctx["rule"], input=ctx["input"], output=ctx["output"], log=ctx["log"],
              wildcards=ctx["wildcards"], threads=int(ctx["threads"]),
              cfg=tconfig.load(dict(config)))
    failed = None
    try:
        with _ONE_AT_A_TIME, _job_logging(job.log), timings.recorded(job.log[0], job.threads):
            _entry(entry)(job)
    except Exception as err:
        failed = one_line(err)
        if failed is None:
            raise
    finally:
        gridrec = sys.modules.get("tomosnake.recon.gridrec")
        if gridrec is not None:
            gridrec.forget()  # the job's gridding points are no use to the process's next job
    if failed is not None:  # what Snakemake then shows: the line, not the stack below the rule
        raise JobFailed(failed)


class JobFailed(RuntimeError):
    """A job stopped by an error that is not a bug (`one_line`); the text is that one line."""


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the disk's fault, not the code's
_H5_FILENAME = re.compile(r"filename = '([^']*)'")  # where HDF5's error text names the file


def one_line(err: BaseException) -> str | None:
    """The one line that says all of an error that is not a bug (bad input; a full, over-quota or read-only
    disk, naming the path), or None: a traceback is then worth showing."""
    if isinstance(err, ScanError):
        return f"{type(err).__name__}: {err}"
    if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
        named = err.filename or (m.group(1) if (m := _H5_FILENAME.search(str(err))) else None)
        return f"{os.strerror(err.errno)}: cannot write {named or '(HDF5 did not say which file)'}"
    return None


def _entry(entry: str) -> Callable[[Job], None]:
    # lazy: an entry imports what its stage needs, once per process (see tomosnake/__init__.py)
    return workflow.job_function(entry)


@contextmanager
def _job_logging(log: list[str]) -> Iterator[None]:
    """The package's log records to the job's log file and stderr while the job runs; its error in the log."""
    logger = logging.getLogger("tomosnake")
    saved = (logger.level, logger.propagate)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(log[0])] if log else []
    for h in handlers:
        h.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    except BaseException as err:  # bad input, a full or read-only disk: one line, no traceback
        line = one_line(err)
        logger.critical("%s", line or f"{type(err).__name__}: {err}", exc_info=line is None)
        raise
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def return_freed_memory() -> None:
    """Make glibc return every freed block of 1 MiB or more to the system at once, in this process
    (what `resources.JOB_ENV` does for processes started after it is set)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, int(JOB_ENV["MALLOC_MMAP_THRESHOLD_"]))
    except (OSError, AttributeError):
        pass  # not glibc: its allocator keeps its own policy


# ----------------------------------------------------------------------------- a process of its own
def _spec(entry: str, ctx: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    def files(named: Any) -> dict[str, Any]:
        f = Files.of(named)
        return {"items": list(f), "names": f._names}

    return {"entry": entry, "rule": ctx["rule"], "input": files(ctx["input"]), "output": files(ctx["output"]),
            "log": files(ctx["log"]), "wildcards": dict(ctx["wildcards"].items()),
            "threads": int(ctx["threads"]), "config": dict(config)}


def _run_in_own_process(entry: str, ctx: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Run the job with `main` in a new Python: the conda env's where the job has one (Snakemake's
    `shell` activates it), else this interpreter. The package is found on this interpreter's path,
    appended so that the env's own packages come first."""
    from snakemake.shell import shell

    log = Path(ctx["log"][0])
    spec = log.with_name(f".{log.stem}.job.json")
    spec.write_text(json.dumps(_spec(entry, ctx, config)))
    root = str(Path(__file__).resolve().parents[1])
    boot = "import sys; sys.path.append(sys.argv[1]); from tomosnake.jobs import main; main(sys.argv[2])"
    python = "python" if ctx.get("conda_env") else sys.executable
    cmd = " ".join(shlex.quote(a) for a in (python, "-c", boot, root, str(spec)))
    # `shell` formats its command ({...} fields): the quoted command is passed as a field of its own.
    try:
        shell("{command}", command=cmd, conda_env=ctx.get("conda_env"), conda_base_path=ctx.get("conda_base_path"),
              threads=ctx["threads"], jobid=ctx.get("jobid"))
    finally:
        spec.unlink(missing_ok=True)


def main(spec_path: str) -> None:
    """A job's whole process: logging to its log and stderr, its timing record at exit, then its entry."""
    spec = json.loads(Path(spec_path).read_text())
    log = Files(spec["log"]["items"], spec["log"]["names"])
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log:
        handlers.append(logging.FileHandler(log[0]))
        timings.install(log[0], spec["threads"])
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True, format=LOG_FORMAT)
    sys.excepthook = _log_uncaught
    job = Job(rule=spec["rule"], input=Files(spec["input"]["items"], spec["input"]["names"]),
              output=Files(spec["output"]["items"], spec["output"]["names"]), log=log,
              wildcards=_Attrs(spec["wildcards"]), threads=spec["threads"],
              cfg=tconfig.load(spec["config"]))
    _entry(spec["entry"])(job)


class _Attrs(dict):
    """Wildcards read back from a job file: a dict whose keys are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _log_uncaught(kind: type[BaseException], err: BaseException, tb: Any) -> None:
    """Put a job's fatal error in its log file, where Snakemake points the user."""
    line = one_line(err)  # bad input, a full or read-only disk: one line, no traceback
    logging.getLogger("tomosnake").critical("%s", line or f"{kind.__name__}: {err}",
                                            exc_info=None if line else (kind, err, tb))


# ----------------------------------------------------------------------------- fault injection
def fault(cfg: TomoConfig, rule: str, chunk: int) -> Callable[[], None] | None:
    """The test hook for ``rule``'s chunk ``chunk``: a callable that fails the job, or None.

    Enabled by config ``fault: {rule, chunk, kind}``; ``raise`` fails with an exception,
    ``kill`` sends SIGKILL to the job's process (in a local run, Snakemake's own: as a crash of the
    machine would).
    """
    f = cfg.fault
    if f.rule != rule or f.chunk != chunk:
        return None

    def trigger() -> None:
        if f.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected fault in {rule} chunk {chunk} (config key 'fault')")

    return trigger


def exit_promptly() -> None:
    """Let this process exit at once when it ends (`exit_promptly_at_shutdown`).

    - Each scheduling round arms a 1 s `threading.Timer` for the job rate limit
      (``--max-jobs-per-timespan``, whose shortest span is 1 s), and the interpreter waits for the
      last one before it exits: cancelled, as nothing is scheduled any more.
    - The interpreter's final garbage collections walk every object of Snakemake's and the stages'
      modules: 0.4 s measured. Frozen objects are left to the operating system.
    """
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
    gc.freeze()


def exit_promptly_at_shutdown() -> None:
    """Run `exit_promptly` when this process ends, in whatever role: the main Snakemake, or a SLURM job
    step's, which runs no ``onsuccess`` (hooks are off there) and waited for its last rate-limit timer,
    ~1 s idle in every SLURM job (sacct: the step ended 1.2 s after the job's script). Registered with the
    hook that `concurrent.futures` uses to run before the interpreter joins its threads; without it (not
    CPython), nothing changes."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(exit_promptly)


def run_jobs_in_this_process(workflow: Any) -> None:
    """Make Snakemake's local executor run every job in this process, as ``--force-use-threads`` does, whatever
    the profile: without it each ``run:`` job starts a Snakemake of its own (a plain ``snakemake --cores 2``
    took 26 s against 8.5 s), which re-parses the user's Snakefile (a Snakemake ``module`` deployment then
    misses its ``configfile``). Call it from an input function every run evaluates: the run's settings are
    assigned after the Snakefile is parsed, and the executor reads them after the DAG is built."""
    if workflow.execution_settings is not None:
        workflow.execution_settings.use_threads = True
