"""What each rule's jobs ask the scheduler for: memory, time, CPUs, partition, GPUs; one model for rules and audit.

Memory: a job's request is what the whole job uses on a cluster node, not only its work's budget:
the budget (``memory_mb``, or the stage's own) plus the Snakemake processes that run inside every
SLURM job (the plugin's job-step process and the ``snakemake`` it starts through ``srun``;
`WRAPPER_MB`, measured by sampling the process tree of real SLURM jobs with benchmarks/scale.py).

Time: the work a job does (pixels per step, bytes read and written, slices reconstructed), divided by
per-core throughputs measured on this project's 2-core test machine (`RATES`, `IO_BYTES_PER_S`),
times `SAFETY`, plus start-up; at least `MIN_MINUTES`. ``combine`` and the exports handle the whole
volume, whatever j is.

CPUs: a job of a threaded rule gets ``threads`` (a reconstructing one: what its plan's budget holds) only
where its threaded work keeps them busy: Snakemake's start-up in every SLURM job and the single-threaded steps
run on one core, so a job of little work asks for one CPU (`job_threads`).

A retry asks for more: memory x `RETRY_MEMORY`, time x `RETRY_TIME` per attempt; every request is
clipped to what the cluster allows (the partition's MaxTime, its nodes' memory), when it is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from tomosnake import placement
from tomosnake.io.volume_stats import SAMPLE_MAX
from tomosnake.cluster import Partition, Request

if TYPE_CHECKING:
    from tomosnake.config import TomoConfig
    from tomosnake.stages.plan import Plan

# Resident memory of the processes that wrap the job inside one SLURM job (the plugin's job-step Snakemake,
# srun, shells), MB: 155 median, 159 largest over 11 jobs (benchmarks/scale.py --gb 0.5, its "wrapper"
# column), plus a quarter. The Snakemake that srun starts runs the job itself (tomosnake/jobs.py): its
# interpreter is the budget's overhead_mb, at least `SNAKEMAKE_MB` (`beyond_budget_mb`). (420 while each
# job's work ran in a third process: 320 median, 380 largest over 142 jobs at 4.3 GB and --heavy, with two
# Snakemake processes besides it.)
WRAPPER_MB = 200
SNAKEMAKE_MB = 220  # the Snakemake that runs a job, as the job starts: 153-209 MB (its timing record's start_rss_mb)
SAFETY = 3.0  # time limit / expected time: shared filesystems and nodes vary 2-5x run to run
STARTUP_MIN = 2.0  # Snakemake start-up inside a job, imports, HDF5 open
# CPU seconds, on one core, of the two Snakemake processes of every SLURM job besides its work (sacct's TotalCPU:
# 1.1-1.4 s the plugin's job step, 1.2-1.5 s the Snakemake srun starts, less the job's own record; benchmarks/scale.py)
JOB_START_CPU_S = 2.5
# A job gets a thread more only while the model expects this share of its CPUs busy (issue 22's target: 70 %
# measured; the margin is for the model's rates, chosen from the slow end of what this machine gave). At 0.85
# the seed's eggshell scan (one preprocessing job, two reconstruction jobs) got 9 and 20 of 96 threads and
# took 0.26 of the paper's time in benchmarks/facility.py; the scans of benchmarks/scale.py ask for 1 at either.
MIN_CPU_EFFICIENCY = 0.8
MIN_MINUTES = 10
RETRY_MEMORY = 1.5
RETRY_TIME = 2.0
IO_BYTES_PER_S = 200e6  # per job, read or write, on a busy shared filesystem (local ext4 here: 0.6-3 GB/s)
# Pre-processing: pixels per second per core of each step (by the step's name up to ':'), measured on
# 64 x 128 x 1024 blocks with one thread (benchmarks/preprocess.py measures whole chunks).
RATES = {"flat_dark": 100e6, "outlier": 40e6, "phase": 6e6, "stripe": 0.3e6}
DEFAULT_STEP_RATE = 50e6  # the other steps are elementwise (i0, -log, unity, background, crop, flatten)


@dataclass(frozen=True)
class ReconRates:
    """Core-seconds of the default backend (`tomosnake.recon.gridrec`), fitted by benchmarks/facility.py on
    this project's 2-core machine (2048, 4096 and 8192 px, angles = width / 2)."""

    per_point: float  # per slice and (angle x FFT length) point: the chain, the spectrum, the spreading
    per_cell: float  # per slice pair and fine-grid cell x log2(side): the grid's FFTs
    build_per_point: float  # per job and point: the gridding's points (`gridrec.gridding`, once per job)


# benchmarks/facility.py on this shared 2-core machine gave 17-24 ns a point, 0.54-1.15 ns a cell x log2 and 66-75 ns
# a point per job, run to run (the machine's load), with the jobs' allocator policy: figures at the top of that
# range, not its best.
RECON = ReconRates(per_point=25e-9, per_cell=1.2e-9, build_per_point=80e-9)
CLUSTER_IO_BYTES_PER_S = 10e9  # a facility's storage, read plus write, all jobs together (the seed paper's SSDs)
JOB_START_S = 5.0  # scheduling and start of a wave of jobs on a cluster (SLURM latency, Snakemake's start)
# Analysis (`tomosnake.analysis`), voxels of a slab and its halo per second per core, without and with the
# watershed (benchmarks/analysis.py, 2 threads: 3.7-7.6 and 0.54-0.83 Mvoxel/s per core), rounded down.
ANALYSIS_VOXELS_PER_S = {False: 3e6, True: 0.4e6}
# The environment of every job. glibc raises its mmap threshold as large arrays are freed, after which
# freed blocks stay in the heap instead of going back to the system: the steps' transients then add up
# (measured: 41 MiB kept after stripe removal on a 156 MiB block, 23 % over the model). A fixed
# threshold returns every array of 1 MiB or more at once.
JOB_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
# The rules that a plan's model covers, with the stage whose budget their jobs keep to.
Stage = Literal["preprocess", "recon", "analysis", None]
RULE_STAGE: dict[str, Stage] = {
    "preprocess_chunk": "preprocess", "conversion_range": "recon", "recon_chunk": "recon",
    "try_center_scan": "recon", "try_lamino_scan": "recon", "combine": None, "input_checksum": None, "ome_zarr": None,
    "tiff_stack": None, "vds_merge": None, "report": None,
    "analyze_chunk": "analysis", "analysis_merge": "analysis", "labels_ome_zarr": None,
}
THREADED = frozenset({"preprocess_chunk", "conversion_range", "recon_chunk", "try_center_scan", "try_lamino_scan",
                      "analyze_chunk"})
RECONSTRUCTING = frozenset({"conversion_range", "recon_chunk"})  # their threads: at most what the plan's budget holds


@dataclass(frozen=True)
class Resources:
    """One rule's request for one attempt."""

    mem_mb: int
    runtime: int  # minutes
    threads: int
    partition: str
    gpus: int = 0


# Light jobs: MB besides the Snakemake processes (imports, HDF5, the report's PDF), and their data, which the
# plan tells (`_light_bytes`); they ask for that, not the budget (the budget asked 2420 MB where 227-521 MB
# were used, benchmarks/scale.py), with `SNAKEMAKE_MB` and `WRAPPER_MB`.
LIGHT_MB = {"vds_merge": 120.0, "combine": 120.0, "report": 250.0}
# The rules whose memory comes from a model of their own, not from their stage's budget (at most the budget).
OWN_MODEL = frozenset(LIGHT_MB) | {"conversion_range"}


def _light_bytes(plan: Plan, cfg: TomoConfig, rule: str) -> float | None:
    """The data a light job holds at once (bytes), or None where the rule uses its budget (a physical combine,
    a pyramid)."""
    info, (n_proj, rows, cols) = plan.info, plan.shape
    if rule == "vds_merge":  # the report's previews: a raw and a corrected projection and sinogram, float32
        return 3 * 4 * (info["n_proj"] * info["n_cols"] + info["n_rows"] * info["n_cols"] + n_proj * cols + rows * cols)
    if rule == "combine" and cfg.output.combine != "physical" and not cfg.output.pyramid:
        # the statistics sample: the chunks' float32 parts, their float64 join and the percentiles' sorted copy
        # (`volume_stats.join`: 313 MB over the interpreter at the largest sample, benchmarks/scale.py --gb 1);
        # the three middle planes, float64 at most
        w = plan.recon_width
        return 20 * SAMPLE_MAX + 8 * (2 * plan.n_slices * w + w * w)
    if rule == "report":
        return 0.0
    return None


def conversion_range_bytes(plan: Plan, cfg: TomoConfig) -> float | None:
    """What a conversion_range job holds beside the interpreter (bytes), or None where it uses its budget
    (laminography's slabs), all summed although not all at once (`tomosnake.stages.conversion_range`): one
    slice reconstructed at a time (the plan's fixed part and bytes per slice; the resolution estimate's
    `FRC_SLICES` have half the angles each), the sampled slices and their concatenation, the estimate's two
    halves, and its float64 copies, spectra and their temporaries (about 28 bytes a pixel of each half's slice,
    `tomosnake.recon.frc`)."""
    from tomosnake.stages.conversion_range import FRC_SLICES, RANGE_SAMPLE_SLICES

    if plan.lamino:
        return None
    e, pixels = plan.estimates, plan.recon_width**2
    sample = min(RANGE_SAMPLE_SLICES, plan.n_slices)
    slices = pixels * (4 * 2 * sample + 4 * 2 * FRC_SLICES + 28 * 2 * FRC_SLICES)
    return e["recon_bytes_fixed"] + e["recon_bytes_per_slice"] + slices


def beyond_budget_mb(cfg: TomoConfig) -> float:
    """MB a job uses beyond its budget: the processes that wrap it, and the interpreter that runs it where the
    budget's ``overhead_mb`` leaves it out (a budget of data alone, as the tests' small ones)."""
    return WRAPPER_MB + max(0.0, SNAKEMAKE_MB - cfg.overhead_mb)


def memory_mb(cfg: TomoConfig, rule: str, plan: Plan | None = None) -> int:
    """What a job of ``rule`` uses in all: its budget (a rule of `OWN_MODEL` with the plan: what it needs) plus
    the Snakemake processes that run it."""
    budget = math.ceil(cfg.budget_mb(RULE_STAGE.get(rule)) + beyond_budget_mb(cfg))
    if plan is None or rule not in OWN_MODEL:
        return budget
    if rule == "conversion_range":
        need, base = conversion_range_bytes(plan, cfg), max(cfg.overhead_mb, SNAKEMAKE_MB)
    else:
        need, base = _light_bytes(plan, cfg, rule), LIGHT_MB[rule] + SNAKEMAKE_MB
    if need is None:
        return budget
    return min(budget, math.ceil(base + need / (1 << 20) + WRAPPER_MB))


def memory_key(cfg: TomoConfig, rule: str) -> str:
    return cfg.budget_key(RULE_STAGE.get(rule))


def gpus(cfg: TomoConfig, rule: str) -> int:
    """GPUs per job (`tomosnake.placement`)."""
    return placement.gpus(cfg, rule)


def partition(cfg: TomoConfig, rule: str) -> tuple[str, str]:
    """(partition, the config key that names it)."""
    if gpus(cfg, rule):
        return cfg.slurm.gpu_partition, "slurm.gpu_partition"
    return cfg.slurm.cpu_partition, "slurm.cpu_partition"


def threads(cfg: TomoConfig, rule: str) -> int:
    """The most threads a job of ``rule`` asks for (`job_threads`: what a job of the plan asks for)."""
    return cfg.threads if rule in THREADED else 1


def threads_for(serial_s: float, parallel_s: float, most: int) -> int:
    """The most threads, up to ``most``, at which a job of ``serial_s`` seconds on one core and ``parallel_s``
    core-seconds spread over its threads keeps `MIN_CPU_EFFICIENCY` of them busy; at least 1."""
    for t in range(most, 1, -1):
        if serial_s + parallel_s >= MIN_CPU_EFFICIENCY * t * (serial_s + parallel_s / t):
            return t
    return 1


def job_threads(plan: Plan | None, cfg: TomoConfig, rule: str) -> int:
    """The CPUs a job of ``rule`` asks for: `threads`, at most what a reconstructing job's plan holds, and
    fewer where its threaded work is small beside `JOB_START_CPU_S` and its single-threaded work
    (`threads_for`). Reads and writes are left out: on a facility's storage they take a fraction of the
    compute, and a job's writer overlaps its reconstruction. Before the plan (and on a GPU): `threads`."""
    most = threads(cfg, rule)
    work = _work(plan, cfg) if plan is not None and not gpus(cfg, rule) else {}
    if rule not in work:
        return most
    if rule in RECONSTRUCTING:
        most = plan.threads(cfg)  # type: ignore[union-attr]
    serial, parallel = work[rule]
    return threads_for(JOB_START_CPU_S + serial, parallel, most)


def requests(cfg: TomoConfig, rules: list[str] | None = None) -> list[Request]:
    """What the rules ask of the cluster, with the config keys behind each value (for `cluster.check`)."""
    out = []
    for rule in rules or list(RULE_STAGE):
        part, key = partition(cfg, rule)
        out.append(Request(partition=part, partition_key=key, threads=threads(cfg, rule),
                           memory_mb=memory_mb(cfg, rule), memory_key=memory_key(cfg, rule), gpus=gpus(cfg, rule)))
    return out


# ------------------------------------------------------------------------------------------------- time
def _recon_points(plan: Plan, cfg: TomoConfig) -> int:
    """(angle x FFT length) points of one slice's spectrum."""
    from tomosnake.recon import gridrec, steps

    # The plan's slice width (after 360->180 with its resolved old_center), padded as the chain pads it.
    pad = cfg.recon.pad
    padded = plan.recon_width + 2 * (steps.pad_amount(plan.recon_width, pad.npad) if pad.enabled else 0)
    n_proj = plan.shape[0] // 2 if cfg.recon.sino_360_to_180.enabled else plan.shape[0]
    return n_proj * gridrec.fft_length(padded)


def _recon_slice_seconds(plan: Plan, cfg: TomoConfig, rates: ReconRates = RECON) -> float:
    """Core-seconds to reconstruct one slice (half a slice pair's grid)."""
    from tomosnake.recon import gridrec

    nf = gridrec.fine_grid(plan.recon_width)
    return rates.per_point * _recon_points(plan, cfg) + rates.per_cell * nf * nf * math.log2(nf) / 2


def _recon_job_seconds(plan: Plan, cfg: TomoConfig, rates: ReconRates = RECON) -> float:
    """Core-seconds a reconstructing job spends once, whatever its slices: the gridding's points."""
    return rates.build_per_point * _recon_points(plan, cfg)


def _preprocess_work(plan: Plan, cfg: TomoConfig, n_proj: int) -> tuple[float, float]:
    """(seconds on one core, core-seconds over the job's threads) of the steps of a preprocessing job of
    ``n_proj`` projections: the elementwise steps run on one thread, the threaded ones (`Step.threaded`) on all."""
    from tomosnake.stages.preprocess_chunk import build_chain

    info = plan.info
    raw_px = n_proj * info["n_rows"] * info["n_cols"]
    chain = build_chain(cfg.preprocess, has_i0=info.get("has_i0"), n_frames=max(info["n_flat"], info["n_dark"]))
    seconds = [(s.threaded, raw_px / RATES.get(s.name.split(":")[0], DEFAULT_STEP_RATE)) for s in chain.steps]
    return sum(t for threaded, t in seconds if not threaded), sum(t for threaded, t in seconds if threaded)


def _work(plan: Plan, cfg: TomoConfig) -> dict[str, tuple[float, float]]:
    """(seconds on one core, core-seconds over its threads) of the compute of the longest job of the rules
    whose threads their work decides (`job_threads`)."""
    from tomosnake.stages.conversion_range import RANGE_SAMPLE_SLICES

    slice_s, once = _recon_slice_seconds(plan, cfg), _recon_job_seconds(plan, cfg)
    rows_per_job = max(b - a for a, b in plan.sino_chunks)
    return {
        "preprocess_chunk": _preprocess_work(plan, cfg, max(b - a for a, b in plan.proj_chunks)),
        "recon_chunk": (0.0, once + rows_per_job * slice_s),
        "conversion_range": (0.0, once + min(RANGE_SAMPLE_SLICES, plan.shape[1]) * slice_s),
    }


def _preprocess_seconds(plan: Plan, cfg: TomoConfig, n_proj: int) -> float:
    """Wall seconds of a preprocessing job of ``n_proj`` projections: read, every step, write."""
    info = plan.info
    raw_px = n_proj * info["n_rows"] * info["n_cols"]
    out_bytes = n_proj * plan.shape[1] * plan.shape[2] * 4
    serial, parallel = _preprocess_work(plan, cfg, n_proj)
    itemsize = np.dtype(info["dtype"]).itemsize
    return (raw_px * itemsize + out_bytes) / IO_BYTES_PER_S + serial + parallel / job_threads(plan, cfg,
                                                                                              "preprocess_chunk")


def expected_seconds(plan: Plan, cfg: TomoConfig) -> dict[str, float]:
    """Expected wall seconds of the longest job of each rule (the first attempt, without `SAFETY`)."""
    slice_s = _recon_slice_seconds(plan, cfg)
    n_proj, rows, cols = plan.shape
    sino_row_bytes = n_proj * cols * 4
    e = plan.estimates
    rows_per_job = max(b - a for a, b in plan.sino_chunks)
    width = plan.recon_width
    out_item = e["volume_bytes"] / max(1, rows * width * width)
    from tomosnake.stages.conversion_range import RANGE_SAMPLE_SLICES

    sample = min(RANGE_SAMPLE_SLICES, rows)
    n_centres = 2 * math.floor(cfg.center_try.width / cfg.center_try.step) + 1
    volume_io = 2 * e["volume_bytes"] / IO_BYTES_PER_S  # read the chunks, write the volume
    # combine reads the chunks once for a physical copy or a pyramid (a VDS alone reads none), writes the
    # copy and the levels, and reads the chunks' statistics samples
    physical, levels = cfg.output.combine == "physical", sum(1 / f**3 for f in cfg.output.pyramid)
    reads = e["volume_bytes"] if physical or levels else 0.0
    writes = e["volume_bytes"] * (physical + levels)
    once = _recon_job_seconds(plan, cfg)
    recon_t, range_t = job_threads(plan, cfg, "recon_chunk"), job_threads(plan, cfg, "conversion_range")
    return {
        "preprocess_chunk": _preprocess_seconds(plan, cfg, max(b - a for a, b in plan.proj_chunks)),
        "recon_chunk": once / recon_t + rows_per_job * (slice_s / recon_t
                                                        + (sino_row_bytes + width * width * out_item) / IO_BYTES_PER_S),
        "conversion_range": once / range_t + sample * (slice_s / range_t + sino_row_bytes / IO_BYTES_PER_S),
        # a trial series after cleanup reads its rows from the raw file: every frame, chunked whole at beamlines
        "try_center_scan": n_centres * slice_s / cfg.threads + (sino_row_bytes + e["raw_bytes"]) / IO_BYTES_PER_S,
        "try_lamino_scan": n_centres * slice_s / cfg.threads + (sino_row_bytes + e["raw_bytes"]) / IO_BYTES_PER_S,
        "combine": (reads + writes + SAMPLE_MAX * 4) / IO_BYTES_PER_S,
        "input_checksum": e["raw_bytes"] / IO_BYTES_PER_S,
        "ome_zarr": volume_io,
        "tiff_stack": volume_io,
        "vds_merge": 60.0,  # the VDS, and the previews: a few frames
        "report": 60.0,
    } | analysis_seconds(plan, cfg)


def analysis_seconds(plan: Plan, cfg: TomoConfig) -> dict[str, float]:
    """Expected wall seconds of the analysis jobs (`tomosnake.analysis`); zero when it is off or cannot run
    (preflight says why)."""
    from tomosnake.analysis.layout import AnalysisError, of_plan

    try:
        lay = of_plan(plan, cfg) if cfg.analysis.enabled else None
    except AnalysisError:
        lay = None
    if lay is None:
        return dict.fromkeys(("analyze_chunk", "analysis_merge", "labels_ome_zarr"), 0.0)
    area = lay.shape[1] * lay.shape[2]
    slices = max(sum(lay.units[u][1] - lay.units[u][0] + 2 * lay.halo for u in range(a, b)) for a, b in lay.jobs)
    rate = ANALYSIS_VOXELS_PER_S[cfg.analysis.watershed] * cfg.threads
    labels_bytes = 5 * area * lay.shape[0]  # phases (uint8) and objects (uint32) per voxel
    return {"analyze_chunk": slices * area * (1 / rate + 4 / IO_BYTES_PER_S + 5 / IO_BYTES_PER_S),
            "analysis_merge": 2 * labels_bytes / IO_BYTES_PER_S,
            "labels_ome_zarr": 2 * labels_bytes / 5 / IO_BYTES_PER_S}


def runtime_minutes(expected_s: float) -> int:
    """A first attempt's time limit from the expected wall time."""
    return max(MIN_MINUTES, math.ceil(expected_s * SAFETY / 60 + STARTUP_MIN))


def model(plan: Plan | None, cfg: TomoConfig) -> dict[str, Resources]:
    """Every rule's first-attempt request for this plan (before the plan: the shortest time limit)."""
    secs = expected_seconds(plan, cfg) if plan is not None else dict.fromkeys(RULE_STAGE, 0.0)
    return {rule: Resources(mem_mb=memory_mb(cfg, rule, plan), runtime=runtime_minutes(s),
                            threads=job_threads(plan, cfg, rule),
                            partition=partition(cfg, rule)[0], gpus=gpus(cfg, rule)) for rule, s in secs.items()}


def for_attempt(r: Resources, attempt: int, limit: Partition | None = None) -> Resources:
    """The request of attempt ``attempt`` (1, 2, ...): grown from the first, clipped to the partition's limits."""
    grow = attempt - 1
    mem = math.ceil(r.mem_mb * RETRY_MEMORY**grow)
    minutes = math.ceil(r.runtime * RETRY_TIME**grow)
    if limit is not None:
        if math.isfinite(limit.memory_mb):
            mem = max(r.mem_mb, min(mem, int(limit.memory_mb)))
        if math.isfinite(limit.max_time_min):
            minutes = min(minutes, int(limit.max_time_min))
    return Resources(mem_mb=mem, runtime=minutes, threads=r.threads, partition=r.partition, gpus=r.gpus)


# ------------------------------------------------------------------------------------- the whole scan
def cluster_seconds(plan: Plan, cfg: TomoConfig, nodes: int, cpus: int, io_bytes_per_s: float,
                    rates: ReconRates = RECON) -> dict[str, float]:
    """Expected wall seconds of a scan's stages on ``nodes`` nodes of ``cpus`` CPUs each, every job using
    the CPUs it asks for (`job_threads`) and sharing storage of ``io_bytes_per_s``. A stage takes the longer of its
    core-seconds spread over the cores its jobs can hold at once and its bytes (read plus written) at the
    storage's speed, as its jobs' reads, computing and writes overlap, plus `JOB_START_S` for each wave of
    its jobs. The same per-core figures as the jobs' time limits (`expected_seconds`), without `SAFETY`;
    the plan (automatic centre) and the report are left out, as in the seed paper's table."""
    from tomosnake.stages.conversion_range import RANGE_SAMPLE_SLICES
    from tomosnake.stages.preprocess_chunk import build_chain

    info, e = plan.info, plan.estimates
    n_proj, rows, cols = plan.shape

    def stage(rule: str, jobs: int, core_s: float, nbytes: float) -> float:
        threads = job_threads(plan, cfg, rule)
        slots = nodes * max(1, cpus // threads)  # jobs running at once
        cores = min(jobs, slots) * threads
        return max(core_s / cores, nbytes / io_bytes_per_s) + JOB_START_S * math.ceil(jobs / slots)

    raw_px = info["n_proj"] * info["n_rows"] * info["n_cols"]
    chain = build_chain(cfg.preprocess, has_i0=info.get("has_i0"), n_frames=max(info["n_flat"], info["n_dark"]))
    pre_core = sum(raw_px / RATES.get(s.name.split(":")[0], DEFAULT_STEP_RATE) for s in chain.steps)
    slice_s, once = _recon_slice_seconds(plan, cfg, rates), _recon_job_seconds(plan, cfg, rates)
    sample = min(RANGE_SAMPLE_SLICES, rows)
    physical = cfg.output.combine == "physical"
    return {
        "preprocess": stage("preprocess_chunk", plan.k, pre_core, e["raw_bytes"] + e["preprocessed_bytes"]),
        "conversion_range": stage("conversion_range", 1, once + sample * slice_s, sample * n_proj * cols * 4),
        "recon": stage("recon_chunk", plan.j, plan.n_slices * slice_s + plan.j * once,
                       e["preprocessed_bytes"] + e["volume_bytes"]),
        "combine": stage("combine", 1, 0.0, 2 * physical * e["volume_bytes"]),
    }
