"""Requests that fit use (issue 22): what each rule's jobs ask of SLURM follows the work the plan gives them.

Plans of sparse scans (metadata and angles only): benchmarks/scale.py's 0.5 GB scan, where every job does a
few seconds of work, and the seed's ovine-bone scan, where a reconstruction job does hours.
"""

from __future__ import annotations

import math

import pytest

from tomosnake import resources
from tomosnake.config import validate
from tomosnake.phantom import write_sparse_scan
from tomosnake.stages.plan import make_plan

SMALL = (1000, 489, 512)  # benchmarks/scale.py --gb 0.5
SMALL_CONFIG = {"memory_mb": 1550, "threads": 2, "subchunks_per_job": 1, "recon": {"center": 258.5}}
BONE = (25134, 2584, 16606)
BONE_CONFIG = {"memory_mb": 64000, "threads": 96, "recon": {"center": 8303.0}}
PHASE = {"preprocess": {"phase": {"enabled": True, "delta_beta": 1000.0}}}


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("requests")
    return {name: str(write_sparse_scan(tmp / f"{name}.h5", shape))
            for name, shape in (("small", SMALL), ("bone", BONE))}


def model(scans: dict, scan: str, config: dict) -> dict[str, resources.Resources]:
    cfg = validate(config)
    return resources.model(make_plan(cfg, scans[scan], scan), cfg)


def test_jobs_of_little_work_ask_for_one_cpu(scans):
    """At the 0.5 GB scan a chunk job computes for seconds, as long as Snakemake's start-up in the job: one CPU
    (with two, half of the allocation idled: 31-39 % CPU efficiency in benchmarks/scale.py)."""
    m = model(scans, "small", SMALL_CONFIG)
    for rule in ("preprocess_chunk", "recon_chunk", "conversion_range"):
        assert m[rule].threads == 1, (rule, m[rule])


def test_jobs_of_much_work_keep_their_threads(scans):
    """A bone reconstruction job, hundreds of core-seconds, keeps threads (as many as the model keeps busy
    beside the job's start-up); so does pre-processing, whose flat/dark and -log run on the job's threads
    (`corrections.base.each_projection`; they ran on one, and the job asked for one), more with phase retrieval."""
    m = model(scans, "bone", BONE_CONFIG)
    assert m["recon_chunk"].threads > 1
    assert m["preprocess_chunk"].threads > 1
    assert model(scans, "bone", BONE_CONFIG | PHASE)["preprocess_chunk"].threads >= m["preprocess_chunk"].threads


def test_conversion_range_asks_for_what_it_holds(scans):
    """conversion_range reconstructs a few sample slices one at a time: it asks for those and the interpreter,
    not the recon budget (1970 MB asked, 334 MB used at the 0.5 GB scan), and never more than the budget."""
    cfg = validate(SMALL_CONFIG)
    plan = make_plan(cfg, scans["small"], "small")
    asked = resources.model(plan, cfg)["conversion_range"].mem_mb
    held = resources.conversion_range_bytes(plan, cfg) / (1 << 20)
    assert held > plan.estimates["recon_bytes_per_slice"] / (1 << 20)  # at least a slice of this scan
    assert asked == math.ceil(cfg.overhead_mb + held + resources.WRAPPER_MB) < cfg.memory_mb / 2
    bone = validate(BONE_CONFIG)
    assert resources.model(make_plan(bone, scans["bone"], "bone"), bone)["conversion_range"].mem_mb <= \
        bone.memory_mb + resources.WRAPPER_MB


def test_threads_for_keeps_the_cpus_busy():
    """Another thread only while the model's efficiency stays at `MIN_CPU_EFFICIENCY`: never below one, never
    above the most allowed."""
    start = resources.JOB_START_CPU_S
    assert resources.threads_for(start, 0.0, 8) == 1
    assert resources.threads_for(start, start, 8) == 1
    assert resources.threads_for(start, 1e6, 8) == 8
    t = resources.threads_for(start, 100.0, 96)
    busy = (start + 100.0) / (t * (start + 100.0 / t))
    assert 1 < t < 96 and busy >= resources.MIN_CPU_EFFICIENCY
