"""Per-job timing records (wall interval, HDF5 IO time, CPU seconds, peak memory, threads) and the run's
timing summary.

`recorded` wraps a job run in the Snakemake process (the usual case), `install`
a job that has a process of its own. Both wrap h5py's dataset read/write entry
points (and file flush/close, where the chunk cache is written), so every HDF5
data transfer of the job is timed without touching the code that does the IO;
other IO (zarr, TIFF) is timed with `io_timer`. Named parts of a job (its
start-up, the centre search) are timed with `phase`. When the job ends it writes
``<log>.timing.json`` beside its log. The counters are the process's: jobs of
one process run one at a time (`tomosnake.jobs`). A job run in Snakemake's process
gets its own figures all the same (`JobCPU`, `JobSampler`): the CPU of its thread and
of the threads it started, the process's peak resident memory while it ran, the most
threads it ran at once. `summarize` turns the records of a scan
and Snakemake's benchmark files into the seed paper's terms: total time, IO
time and fraction, time with no job running (queue and scheduling), raw pixels
per second.
"""

from __future__ import annotations

import atexit
import csv
import functools
import json
import os
import re
import resource
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import psutil

from tomosnake.io.atomic import write_text

RECORD_SUFFIX = ".timing.json"
MB = 1 << 20
_io = {"seconds": 0.0, "depth": 0}
_phases: dict[str, float] = {}
_phase_lock = threading.Lock()
_installed: list[Path] = []


@contextmanager
def io_timer() -> Iterator[None]:
    """Count the time spent in the block as IO (nested blocks count once)."""
    _io["depth"] += 1
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _io["depth"] -= 1
        if _io["depth"] == 0:
            _io["seconds"] += time.perf_counter() - t0


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Record the block's wall seconds under ``name`` in this job's record (added up if repeated)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        add_phase(name, time.perf_counter() - t0)


def add_phase(name: str, seconds: float) -> None:
    with _phase_lock:  # parts of a job may run in several of its threads
        _phases[name] = _phases.get(name, 0.0) + seconds


def phases() -> dict[str, float]:
    """The named parts' seconds recorded so far for this process's job."""
    return dict(_phases)


def io_seconds() -> float:
    """IO seconds counted so far in this process."""
    return _io["seconds"]


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with io_timer():
            return fn(*args, **kwargs)

    wrapper.__wrapped_by_timings__ = True  # type: ignore[attr-defined]
    return wrapper


def _wrap_h5py() -> None:
    targets = [(h5py.Dataset, name) for name in ("__getitem__", "__setitem__", "read_direct", "write_direct")]
    targets += [(h5py.File, "flush"), (h5py.File, "close")]
    for cls, name in targets:
        fn = getattr(cls, name)
        if not getattr(fn, "__wrapped_by_timings__", False):
            setattr(cls, name, _timed(fn))


def process_start() -> float:
    """This process's start, epoch seconds, to about 10 ms (psutil's ``create_time`` rounds the boot
    time to whole seconds, enough to show a job starting before the one it waits for had ended)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return psutil.Process().create_time()
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


@dataclass
class JobRecord:
    """One finished job: when it ran, its IO seconds (None: not measured) and peak memory."""

    job: str  # the log's stem, e.g. recon_3
    start: float  # epoch seconds (process start)
    end: float
    io_s: float | None
    threads: int  # what the job was given
    max_rss_mb: float | None  # the process's peak resident memory while the job ran
    ok: bool = True
    host: str = ""
    slurm_job_id: str | None = None
    phases: dict[str, float] = field(default_factory=dict)  # named parts of the job (`phase`), seconds
    cpu_s: float | None = None  # CPU seconds of the job's threads (`JobCPU`)
    threads_used: int | None = None  # the most threads of the job that ran at once (`JobSampler`)
    start_rss_mb: float | None = None  # the process's resident memory when the job started

    @property
    def cores_busy(self) -> float | None:
        """Mean cores the job kept busy: CPU seconds / wall seconds."""
        return None if self.cpu_s is None or self.wall <= 0 else self.cpu_s / self.wall

    @property
    def wall(self) -> float:
        return self.end - self.start

    @property
    def stage(self) -> str:
        """The job's name without its chunk number: recon_3 -> recon."""
        return re.sub(r"_\d+$", "", self.job)


def record_path(log_path: str | Path) -> Path:
    log_path = Path(log_path)
    return log_path.with_name(log_path.stem + RECORD_SUFFIX)


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each live thread of this process, by its id (Linux: /proc/self/task)."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def _process_cpu() -> float:
    t = os.times()
    return t.user + t.system


class JobCPU:
    """CPU seconds of a job run in a process that runs other threads too (Snakemake's): the process's CPU
    since the job started, less what the threads that were already running besides the job's own spent
    meanwhile. What remains is the job's thread and every thread started since (its worker pools, ended
    or not): the job's own CPU, while the process runs one job at a time (`tomosnake.jobs`)."""

    def __init__(self) -> None:
        self._me = threading.get_native_id()
        self._others = {tid: cpu for tid, cpu in _thread_cpu().items() if tid != self._me}
        self._t0 = _process_cpu()

    def seconds(self) -> float:
        now = _thread_cpu()
        others = sum(now[tid] - cpu for tid, cpu in self._others.items() if tid in now)
        return max(0.0, _process_cpu() - self._t0 - others)


class JobSampler:
    """Samples, in a thread of its own while a job runs, every `SAMPLE_S`: the process's resident memory and
    the CPU times of the job's threads (its own and those started since). It keeps the peak RSS and the most
    threads that ran at once: each with at least a tenth of a sliding 0.2 s window's CPU, so that a thread
    sharing its core with other work still counts (psutil's thread times tick every 10 ms)."""

    SAMPLE_S = 0.02
    WINDOW = 10  # samples: threads compared with their CPU times 0.2 s before, at every sample

    def __init__(self, job_thread: int | None = None) -> None:
        self._proc = psutil.Process()
        self.start_rss = self._proc.memory_info().rss
        self.peak_rss = self.start_rss
        self._stop = threading.Event()
        self._job = threading.get_native_id() if job_thread is None else job_thread
        self._before = {t.id for t in self._proc.threads()} - {self._job}
        self.threads = 1
        self._thread = threading.Thread(target=self._run, name="tomosnake-job-sampler", daemon=True)
        self._thread.start()

    def _job_cpu(self, me: int) -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in self._proc.threads()
                if t.id not in self._before and t.id != me}

    def _run(self) -> None:
        me = threading.get_native_id()
        past: deque[dict[int, float]] = deque(maxlen=self.WINDOW)
        least = self.SAMPLE_S * self.WINDOW / 10
        while not self._stop.wait(self.SAMPLE_S if past else 0):
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            now = self._job_cpu(me)
            if past:  # a sliding window: a burst is seen whole wherever it starts
                then = past[0]
                self.threads = max(self.threads, sum(cpu - then.get(tid, 0.0) >= least for tid, cpu in now.items()))
            past.append(now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)


def install(log_path: str | Path, threads: int = 1) -> Path:
    """Time this process's HDF5 IO and write its record beside ``log_path`` at exit; return the record's path.

    For a job with a process of its own: the time from the process's start to this call (interpreter,
    imports) is recorded as the phase ``startup``; CPU and peak memory are the whole process's."""
    path = record_path(log_path)
    _wrap_h5py()
    if path in _installed:
        return path
    _installed.append(path)
    start = process_start()
    add_phase("startup", max(0.0, time.time() - start))
    sampler = JobSampler()

    def at_exit() -> None:
        sampler.stop()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _write(log_path, start, threads, ok=not hasattr(sys, "last_value"), rss_mb=usage.ru_maxrss / 1024,
               cpu_s=usage.ru_utime + usage.ru_stime, threads_used=sampler.threads)

    atexit.register(at_exit)
    return path


@contextmanager
def recorded(log_path: str | Path, threads: int = 1) -> Iterator[None]:
    """Time the block as one job run in this process and write its record beside ``log_path``, with the
    job's own CPU (`JobCPU`), the process's peak memory while it ran and the job's threads (`JobSampler`)."""
    _wrap_h5py()
    _io["seconds"], _io["depth"] = 0.0, 0
    _phases.clear()
    start, ok = time.time(), False
    cpu, sampler = JobCPU(), JobSampler()
    try:
        yield
        ok = True
    finally:
        sampler.stop()
        _write(log_path, start, threads, ok=ok, rss_mb=sampler.peak_rss / MB, cpu_s=cpu.seconds(),
               threads_used=sampler.threads, start_rss_mb=sampler.start_rss / MB)


def _write(log_path: str | Path, start: float, threads: int, ok: bool, rss_mb: float | None, cpu_s: float | None,
           threads_used: int | None, start_rss_mb: float | None = None) -> None:
    path = record_path(log_path)
    rec = JobRecord(job=Path(log_path).stem, start=start, end=time.time(), io_s=io_seconds(), threads=threads,
                    max_rss_mb=rss_mb, ok=ok, host=socket.gethostname(), slurm_job_id=os.environ.get("SLURM_JOB_ID"),
                    phases=dict(_phases), cpu_s=cpu_s, threads_used=threads_used, start_rss_mb=start_rss_mb)
    write_text(path, json.dumps(asdict(rec)))


@dataclass(frozen=True)
class Benchmark:
    """Snakemake's benchmark of one job (``benchmark:`` directive): wall seconds, peak RSS, MB read/written."""

    job: str
    s: float
    end: float  # the file's modification time: when the job ended
    max_rss_mb: float | None
    io_in_mb: float | None
    io_out_mb: float | None


def _num(v: str | None) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # Snakemake writes "NA" where psutil could not measure


def read_benchmarks(bench_dir: str | Path) -> dict[str, Benchmark]:
    """Benchmark TSVs by job name (file stem); the last row when a job was benchmarked repeatedly."""
    out = {}
    for p in Path(bench_dir).glob("*.tsv"):
        with p.open() as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows and _num(rows[-1].get("s")) is not None:
            r = rows[-1]
            out[p.stem] = Benchmark(p.stem, float(r["s"]), p.stat().st_mtime, _num(r.get("max_rss")),
                                    _num(r.get("io_in")), _num(r.get("io_out")))
    return out


def read_jobs(log_dir: str | Path, benchmarks: dict[str, Benchmark], default_threads: int = 1) -> list[JobRecord]:
    """Successful jobs from their records in ``log_dir``, plus benchmarked jobs that left no record
    (interval from the benchmark, IO not measured), by start time."""
    recs = {}
    for p in Path(log_dir).glob("*" + RECORD_SUFFIX):
        rec = JobRecord(**json.loads(p.read_text()))
        if rec.ok:
            recs[rec.job] = rec
    for job, b in benchmarks.items():
        if job not in recs:
            recs[job] = JobRecord(job, b.end - b.s, b.end, None, default_threads, b.max_rss_mb)
    return sorted(recs.values(), key=lambda r: r.start)


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of closed intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def peak_concurrency(intervals: list[tuple[float, float, int]]) -> int:
    """Largest sum of weights (threads) of intervals running at the same time."""
    events = sorted([(a, w) for a, _, w in intervals] + [(b, -w) for _, b, w in intervals],
                    key=lambda e: (e[0], e[1]))  # ends before starts at the same instant
    peak = cur = 0
    for _, w in events:
        cur += w
        peak = max(peak, cur)
    return peak


@dataclass(frozen=True)
class StageTiming:
    stage: str
    jobs: int
    wall_sum: float
    wall_max: float
    io_s: float | None  # None: not measured in any of its jobs
    max_rss_mb: float | None
    read_mb: float | None
    written_mb: float | None
    cpu_s: float | None = None  # the jobs' own CPU seconds, summed (None: no job measured it)
    threads_used: int | None = None  # the most threads one of its jobs ran at once


@dataclass(frozen=True)
class Summary:
    """A scan's timings in the seed paper's terms; see `summarize`."""

    total_s: float  # first job's start to `until`
    busy_s: float  # union of job intervals
    idle_s: float  # total - busy: no job of the scan running (queue, scheduling, latency)
    job_s: float  # sum of job wall times
    io_s: float  # over the jobs that measured it
    io_job_s: float  # wall time of the jobs that measured IO
    io_jobs: int
    raw_pixels: int
    threads_peak: int
    stages: list[StageTiming]
    records: list[JobRecord]

    @property
    def io_fraction(self) -> float:
        return self.io_s / self.io_job_s if self.io_job_s else 0.0

    @property
    def idle_fraction(self) -> float:
        return self.idle_s / self.total_s if self.total_s else 0.0

    @property
    def pixels_per_s(self) -> float:
        return self.raw_pixels / self.total_s if self.total_s else 0.0

    @property
    def pixels_per_thread_s(self) -> float:
        return self.pixels_per_s / max(1, self.threads_peak)


def _sum_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def summarize(records: list[JobRecord], benchmarks: dict[str, Benchmark], raw_pixels: int,
              until: float) -> Summary:
    """Timings of the jobs in ``records`` from the first job's start to ``until`` (the report's start).

    A stage's wall time comes from Snakemake's benchmark where there is one, else from the job's own
    record; its peak memory from the job's record where it has one (a benchmark measures the whole
    Snakemake process that ran the job), its CPU seconds and threads from the records.
    """
    if not records:
        return Summary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, raw_pixels, 0, [], [])
    total = until - min(r.start for r in records)
    busy = union_seconds([(r.start, r.end) for r in records])
    by_stage: dict[str, list[JobRecord]] = {}
    for r in records:
        by_stage.setdefault(r.stage, []).append(r)
    stages = []
    for stage, recs in by_stage.items():
        bench = [benchmarks.get(r.job) for r in recs]
        walls = [b.s if b else r.wall for r, b in zip(recs, bench, strict=True)]
        rss = [r.max_rss_mb if r.max_rss_mb is not None else b.max_rss_mb if b else None
               for r, b in zip(recs, bench, strict=True)]
        stages.append(StageTiming(stage, len(recs), sum(walls), max(walls), _sum_or_none([r.io_s for r in recs]),
                                  max((v for v in rss if v is not None), default=None),
                                  _sum_or_none([b.io_in_mb if b else None for b in bench]),
                                  _sum_or_none([b.io_out_mb if b else None for b in bench]),
                                  _sum_or_none([r.cpu_s for r in recs]),
                                  max((r.threads_used for r in recs if r.threads_used is not None), default=None)))
    measured = [r for r in records if r.io_s is not None]
    return Summary(total_s=total, busy_s=busy, idle_s=max(0.0, total - busy), job_s=sum(r.wall for r in records),
                   io_s=sum(r.io_s for r in measured), io_job_s=sum(r.wall for r in measured),  # type: ignore[misc]
                   io_jobs=len(measured), raw_pixels=raw_pixels,
                   threads_peak=peak_concurrency([(r.start, r.end, r.threads) for r in records]), stages=stages,
                   records=records)
