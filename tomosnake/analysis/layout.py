"""Where the analysis runs: which pyramid level, slabs of slices with their halo, and jobs; checked before any job.

A slab ("unit") is ``depth`` slices of the level (its core) read with a halo of slices each side: the
Gaussian's radius (scipy's, ``int(4 sigma + 0.5)``), plus with the watershed what the distance transform
and the seeds need to be the same as in one whole volume (``2 r + r / 2``, r the particle radius: the
distance at a seed within r of the core is exact when every voxel within r of it is read).
The depth is the most the analysis budget holds, as `BYTES_PER_VOXEL` per voxel of the slab and its halo;
the units are spread over at most ``max_chunk_jobs`` jobs. Everything follows from the plan and the config,
so the rules, preflight and the jobs agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tomosnake.config import AnalysisConfig, TomoConfig
from tomosnake.io.pyramid import level_shape
from tomosnake.stages.plan import Plan, split

# Peak bytes per voxel of a slab with its halo (the job's peak RSS less its RSS before the first slab, over
# the largest slab's voxels), measured with benchmarks/analysis.py on 128^3 to 256^3, 2 threads: 21.6-23.2
# (components), 67.4-77.5 (watershed); with a margin. The float32 slab, the blocks being smoothed,
# phases (uint8), the mask and labels (int32); with the watershed the distance transform (float64, and
# scipy's feature transform inside it, 3 x int32), skimage's watershed (padded float64 copies) and seeds.
BYTES_PER_VOXEL = {False: 28, True: 88}


class AnalysisError(ValueError):
    """Analysis parameters that cannot run on this volume; the text is one line naming the key or file."""


@dataclass(frozen=True)
class Layout:
    """The analysis of one volume: level, its shape, halo, slabs (units) and jobs."""

    level: int
    factor: int  # the level's block size in voxels of the full volume (1 at level 0)
    shape: tuple[int, int, int]  # (slices, y, x) of the level
    halo_smooth: int
    halo_objects: int
    units: list[tuple[int, int]]  # core slices [z0, z1) of each slab
    jobs: list[tuple[int, int]]  # units [u0, u1) of each analyze_chunk job

    @property
    def halo(self) -> int:
        return self.halo_smooth + self.halo_objects

    @property
    def dataset(self) -> str:
        """The level's dataset in the volume file."""
        return "exchange/data" if self.level == 0 else f"exchange/pyramid/{self.factor}"


def smooth_radius(sigma: float) -> int:
    """Slices either side a Gaussian of ``sigma`` reads (scipy's kernel radius at truncate 4)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def seed_distance(a: AnalysisConfig) -> int:
    """Watershed seeds lie at least this far apart (voxels)."""
    return max(1, round(a.particle_radius / 2))


def objects_halo(a: AnalysisConfig) -> int:
    return math.ceil(2 * a.particle_radius) + seed_distance(a) if a.watershed else 0


def level_factor(cfg: TomoConfig) -> int:
    """The block size of ``analysis.level``; one line naming the key if the pyramid lacks the level."""
    level, factors = cfg.analysis.level, cfg.output.pyramid
    if level > len(factors):
        raise AnalysisError(f"config key 'analysis.level': {level}, but the volume's pyramid has levels 0 to "
                            f"{len(factors)} (output.pyramid {factors})")
    return 1 if level == 0 else factors[level - 1]


def make_layout(volume_shape: tuple[int, int, int], cfg: TomoConfig) -> Layout:
    """The analysis layout of a volume of ``volume_shape`` (level 0); `AnalysisError` if it cannot run."""
    a = cfg.analysis
    factor = level_factor(cfg)
    nz, ny, nx = level_shape(volume_shape, factor)
    shape = (nz, ny, nx)
    hs, ho = smooth_radius(a.smooth), objects_halo(a)
    key = cfg.budget_key("analysis")
    budget = max(0.0, cfg.budget_mb("analysis") - cfg.overhead_mb) * 2**20
    per_slice = ny * nx * BYTES_PER_VOXEL[a.watershed]
    depth = int(budget // per_slice) - 2 * (hs + ho)
    if depth < 1:
        need = math.ceil((1 + 2 * (hs + ho)) * per_slice / 2**20 + cfg.overhead_mb)
        raise AnalysisError(f"config key '{key}': {cfg.budget_mb('analysis'):g} MB holds no slab of the analysis "
                            f"(level {a.level}, slices of {ny} x {nx} voxels, halo {hs + ho} each side): it "
                            f"needs {need} MB with 'overhead_mb' {cfg.overhead_mb:g}")
    units = split(nz, math.ceil(nz / min(depth, nz)))
    jobs = split(len(units), min(len(units), cfg.max_chunk_jobs))
    return Layout(a.level, factor, shape, hs, ho, units, jobs)


def check(cfg: TomoConfig, plan: Plan, volume_path: str) -> None:
    """What can be checked before any job: level, budget, and the histogram when the volume exists already
    (a new volume's histogram is checked by the analysis jobs, first thing)."""
    if not cfg.analysis.enabled:
        return
    of_plan(plan, cfg)
    if Path(volume_path).is_file():
        from tomosnake.analysis.segment import volume_thresholds

        volume_thresholds(volume_path, cfg.analysis.phases)


def disk_bytes(plan: Plan, cfg: TomoConfig) -> int:
    """What the analysis writes at its peak: the jobs' slabs and the labels file (phases uint8, objects uint32),
    and the labels' OME-Zarr copy."""
    if not cfg.analysis.enabled:
        return 0
    voxels = math.prod(of_plan(plan, cfg).shape)
    return voxels * (5 + 5 + (1 if cfg.output.ome_zarr else 0))


def of_plan(plan: Plan, cfg: TomoConfig) -> Layout:
    """The layout of the volume the plan makes (slices x width x width)."""
    return make_layout((plan.n_slices, plan.recon_width, plan.recon_width), cfg)
