"""What each rule's jobs ask the scheduler for: memory, time, CPUs, partition, GPUs; one model for rules and audit.

Memory: a job's request is what the whole job uses on a cluster node, not only its work's budget:
the budget (``memory_mb``, or the stage's own) plus the Snakemake processes that run inside every
SLURM job (the plugin's job-step process and the ``snakemake`` it starts through ``srun``;
`WRAPPER_MB`, measured by sampling the process tree of real SLURM jobs with benchmarks/scale.py).

Time: the work a job does (pixels per step, bytes read and written, slices reconstructed), divided by
per-core throughputs measured on this project's 2-core test machine (`RATES`, `IO_BYTES_PER_S`),
times `SAFETY`, plus start-up; at least `MIN_MINUTES`. ``combine`` and the exports handle the whole
volume, whatever j is.

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

# Resident memory of the Snakemake processes inside one SLURM job (job-step executor + the inner
# snakemake), MB: 320 median, 380 largest over 142 jobs (benchmarks/scale.py, 4.3 GB and --heavy), plus 10 %,
# measured while each job's work ran in a third process. The inner Snakemake now runs the job itself
# (tomosnake/jobs.py): its interpreter is counted here and again in the budget's overhead_mb, which
# leaves the request on the safe side (4.3 GB scan: largest peak 1261 MB against --mem 1770 MB).
# (535 MB before the package imported scipy only where used: every Snakefile parse pulled it in.)
WRAPPER_MB = 420
SAFETY = 3.0  # time limit / expected time: shared filesystems and nodes vary 2-5x run to run
STARTUP_MIN = 2.0  # Snakemake start-up inside a job, imports, HDF5 open
MIN_MINUTES = 10
RETRY_MEMORY = 1.5
RETRY_TIME = 2.0
IO_BYTES_PER_S = 200e6  # per job, read or write, on a busy shared filesystem (local ext4 here: 0.6-3 GB/s)
# Pre-processing: pixels per second per core of each step (by the step's name up to ':'), measured on
# 64 x 128 x 1024 blocks with one thread (benchmarks/preprocess.py measures whole chunks).
RATES = {"flat_dark": 100e6, "outlier": 40e6, "phase": 6e6, "stripe": 0.3e6}
DEFAULT_STEP_RATE = 50e6  # the other steps are elementwise (i0, -log, unity, background, crop, flatten)
# Reconstruction (default gridding backend), core-seconds per slice per (angle x FFT length): 0.78-1.23 us
# measured from 512 to 2048 px with one thread; the larger, as the grid outgrows the caches.
RECON_S_PER_POINT = 1.25e-6
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


@dataclass(frozen=True)
class Resources:
    """One rule's request for one attempt."""

    mem_mb: int
    runtime: int  # minutes
    threads: int
    partition: str
    gpus: int = 0


def memory_mb(cfg: TomoConfig, rule: str) -> int:
    """What a job of ``rule`` uses in all: its budget plus the Snakemake processes that run it."""
    return math.ceil(cfg.budget_mb(RULE_STAGE.get(rule)) + WRAPPER_MB)


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
    return cfg.threads if rule in THREADED else 1


def requests(cfg: TomoConfig, rules: list[str] | None = None) -> list[Request]:
    """What the rules ask of the cluster, with the config keys behind each value (for `cluster.check`)."""
    out = []
    for rule in rules or list(RULE_STAGE):
        part, key = partition(cfg, rule)
        out.append(Request(partition=part, partition_key=key, threads=threads(cfg, rule),
                           memory_mb=memory_mb(cfg, rule), memory_key=memory_key(cfg, rule), gpus=gpus(cfg, rule)))
    return out


# ------------------------------------------------------------------------------------------------- time
def _recon_slice_seconds(plan: Plan, cfg: TomoConfig) -> float:
    """Core-seconds to reconstruct one slice."""
    from tomosnake.recon import gridrec, steps

    # The plan's slice width (after 360->180 with its resolved old_center), padded as the chain pads it.
    pad = cfg.recon.pad
    padded = plan.recon_width + 2 * (steps.pad_amount(plan.recon_width, pad.npad) if pad.enabled else 0)
    return RECON_S_PER_POINT * plan.shape[0] * gridrec.fft_length(padded)


def _preprocess_seconds(plan: Plan, cfg: TomoConfig, n_proj: int) -> float:
    """Wall seconds of a preprocessing job of ``n_proj`` projections: read, every step, write."""
    from tomosnake.stages.preprocess_chunk import build_chain

    info = plan.info
    raw_px = n_proj * info["n_rows"] * info["n_cols"]
    out_bytes = n_proj * plan.shape[1] * plan.shape[2] * 4
    chain = build_chain(cfg.preprocess, has_i0=info.get("has_i0"), n_frames=max(info["n_flat"], info["n_dark"]))
    compute = sum(raw_px / RATES.get(s.name.split(":")[0], DEFAULT_STEP_RATE) for s in chain.steps)
    itemsize = np.dtype(info["dtype"]).itemsize
    return (raw_px * itemsize + out_bytes) / IO_BYTES_PER_S + compute / cfg.threads


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
    return {
        "preprocess_chunk": _preprocess_seconds(plan, cfg, max(b - a for a, b in plan.proj_chunks)),
        "recon_chunk": rows_per_job * (slice_s / cfg.threads
                                       + (sino_row_bytes + width * width * out_item) / IO_BYTES_PER_S),
        "conversion_range": sample * (slice_s / cfg.threads + sino_row_bytes / IO_BYTES_PER_S),
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
    return {rule: Resources(mem_mb=memory_mb(cfg, rule), runtime=runtime_minutes(s), threads=threads(cfg, rule),
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
