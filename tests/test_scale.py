"""Facility scale on paper: the seed paper's ovine-bone scan (25134 x 2584 x 16606 uint16, 2.16 TB raw) as a
sparse HDF5 file that declares the shape and writes nothing but the angles (a few hundred kB on disk).

The plan must give job counts a facility accepts, time limits from throughput (a preprocessing job of the
bone scan is not 22 days, ``combine`` writes the whole volume whatever j is), and ``tomosnake audit``
must plan and list it with the output filesystem far too small when ``disk_check: false``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_audit import table
from tomosnake import cluster, resources
from tomosnake.config import validate
from tomosnake.phantom import write_sparse_scan
from tomosnake.workflow import PROFILES
from tomosnake.stages.plan import Plan, make_plan, split

BONE = (25134, 2584, 16606)
CONFIG = {"memory_mb": 43000, "threads": 96, "recon": {"center": 8303.0}}


@pytest.fixture(scope="module")
def bone(tmp_path_factory) -> Path:
    return write_sparse_scan(tmp_path_factory.mktemp("bone") / "bone.h5", BONE)


@pytest.fixture(scope="module")
def bone_plan(bone):
    return make_plan(validate(CONFIG), str(bone), "bone")


def test_job_counts_a_facility_accepts(bone_plan):
    cfg = validate(CONFIG)
    assert 2 <= bone_plan.k <= cfg.max_chunk_jobs and 2 <= bone_plan.j <= cfg.max_chunk_jobs
    # every job still within its memory: the loads are as large as before, only more of them per job
    assert bone_plan.slices_per_load >= 1 and sum(b - a for a, b in bone_plan.sino_chunks) == BONE[1]


def test_reconstruction_threads_fit_the_budget(bone):
    """Threads share each slice pair (`gridrec.reconstruct`): at the bone scan with a 64 GB budget every one of
    a node's 96 threads reconstructs (the plan gave 1 when each thread gridded a pair of its own), a load of
    the model stays in the budget, and a slice costs at most 25 GB (TomoPy needed 70 GiB)."""
    from tomosnake.recon.chain import block_overhead_bytes
    from tomosnake.stages.preprocess_chunk import FIXED_BYTES

    cfg = validate(CONFIG | {"memory_mb": 64000})
    plan = make_plan(cfg, str(bone), "bone")
    assert plan.recon_threads == plan.threads(cfg) == 96
    e = plan.estimates
    fixed = block_overhead_bytes(BONE[0], BONE[2], cfg.recon, 96) + FIXED_BYTES
    load = fixed + plan.slices_per_load * e["recon_bytes_per_slice"]
    assert load <= e["recon_budget_bytes"]
    assert plan.slices_per_load >= 2 and load / plan.slices_per_load <= 25e9


def test_time_limits_from_throughput(bone_plan):
    cfg = validate(CONFIG)
    model = resources.model(bone_plan, cfg)
    assert model["preprocess_chunk"].runtime < 24 * 60  # 30 min/GB gave 22.5 days at a 500 GB budget
    assert model["recon_chunk"].runtime >= resources.MIN_MINUTES
    # a physical combine copies the whole volume: its limit does not shrink with more reconstruction jobs
    physical = validate(CONFIG | {"output": {"combine": "physical"}})
    many = dataclasses.replace(bone_plan, sino_chunks=split(BONE[1], 2584, 2))
    copy = resources.model(bone_plan, physical)["combine"].runtime
    assert resources.model(many, physical)["combine"].runtime == copy
    assert copy * 60 > bone_plan.estimates["volume_bytes"] / 1e9  # > 1 GB/s
    # a virtual one (the default) reads only the chunks' statistics records
    assert model["combine"].runtime == resources.MIN_MINUTES < copy
    assert resources.model(many, cfg)["recon_chunk"].runtime <= model["recon_chunk"].runtime


@pytest.mark.slow
def test_audit_of_the_bone_scan_without_disk_check(bone, tmp_path):
    """2.85 TB of volume on a small disk passes with ``disk_check: false`` (the check is said to be skipped)."""
    cfg = tmp_path / "bone.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG | {"threads": 2, "input": [str(bone)], "outdir": str(tmp_path / "out"),
                                            "disk_check": False}))
    # audited for MAX IV's nodes (500 GiB, 96 CPUs): this machine and its test cluster would refuse the budget
    limits = tmp_path / "maxiv.json"
    cluster.save({"cpu": cluster.Partition("cpu", 7 * 1440, 96, 500 * 1024, 0)}, str(limits))
    proc = subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", "--profile", str(PROFILES / "maxiv"),
                           "--configfile", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          check=False, env=os.environ | {cluster.LIMITS_ENV: str(limits)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "disk: not checked (config key 'disk_check' is false)" in proc.stdout
    k, j = (int(x) for x in re.search(r"k = (\d+) preprocessing chunks, j = (\d+)", proc.stdout).groups())
    assert k + j <= 2 * validate(CONFIG).max_chunk_jobs


@pytest.mark.slow
def test_audit_of_the_bone_scan_on_facility_nodes(bone, tmp_path):
    """MAX IV-like nodes (96 CPUs, 512 GB, 7 days), 25 of them, a 64 GB budget and 96 threads: every recon job's
    plan runs all 96 threads (plan.json), and the audit prints the scan's expected wall time on those nodes
    from the model that sets the time limits."""
    cfg = tmp_path / "bone.yaml"
    out = tmp_path / "out"
    cfg.write_text(yaml.safe_dump(CONFIG | {"memory_mb": 64000, "input": [str(bone)], "outdir": str(out),
                                            "disk_check": False}))
    limits = tmp_path / "maxiv.json"
    cluster.save({"cpu": cluster.Partition("cpu", 7 * 1440, 96, 512 * 1024, 0, nodes=25)}, str(limits))
    proc = subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", "--profile", str(PROFILES / "maxiv"),
                           "--configfile", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          check=False, env=os.environ | {cluster.LIMITS_ENV: str(limits)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads(next(out.rglob("plan.json")).read_text())
    assert plan["recon_threads"] == 96
    # the jobs' threads as the model sets them from their work (more than one: the audit lifts the dry run's cap)
    model = resources.model(Plan.read(next(out.rglob("plan.json"))), validate(yaml.safe_load(cfg.read_text())))
    assert model["recon_chunk"].threads > 1
    assert {row[3] for row in table(proc.stdout)["recon_chunk"]} == {str(model["recon_chunk"].threads)}
    wall = re.search(r"expected wall time on 25 node\(s\) of 96 CPUs \(cpu\), storage at 10 GB/s: ([\d.]+) min",
                     proc.stdout)
    assert wall is not None, proc.stdout
    assert 0 < float(wall.group(1)) < 7 * 1440


def test_light_jobs_ask_for_what_they_need(bone_plan):
    """The VDS, a virtual combine and the report ask for one CPU and their data, not the 43 GB budget."""
    cfg = validate(CONFIG)
    model = resources.model(bone_plan, cfg)
    for rule in ("vds_merge", "combine", "report"):
        assert model[rule].threads == 1 and model[rule].mem_mb < cfg.memory_mb / 2, (rule, model[rule])
    assert model["report"].mem_mb < 1000 and model["combine"].mem_mb < 4000
    assert model["recon_chunk"].mem_mb == cfg.memory_mb + resources.WRAPPER_MB
    physical = validate(CONFIG | {"output": {"combine": "physical"}})
    assert resources.model(bone_plan, physical)["combine"].mem_mb == cfg.memory_mb + resources.WRAPPER_MB
