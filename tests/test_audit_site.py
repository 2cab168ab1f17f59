"""`tomosnake audit` reads what the run will (issue 27): the profile Snakemake finds (``XDG_CONFIG_HOME``),
partitions that would not start a job (DOWN, DRAIN, no node up), and a backend the jobs' Python cannot
import, which the run itself refuses before anything is queued (no job fails, none is retried).
Real audits and runs on a generated scan; the cluster's limits from a file (``TOMOSNAKE_CLUSTER_LIMITS``,
as for auditing another cluster), so no SLURM is needed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import read_only
from tests.workflow import run
from tomosnake import audit, cluster
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.workflow import PROFILES

SPEC = PhantomSpec(n_proj=60, n_rows=4, n_cols=32, center_offset=0.5, seed=6)
HAS_TOMOPY = importlib.util.find_spec("tomopy") is not None


def _part(name: str, state: str = "UP", nodes: int = 2, usable: int = 2) -> dict:
    return {"name": name, "max_time_min": 1440, "cpus": 16, "memory_mb": 64000, "gpus": 1 if name == "gpu" else 0,
            "up": state == "UP", "state": state, "nodes": nodes, "nodes_usable": usable}


@pytest.fixture()
def site(tmp_path) -> tuple[Path, dict, dict]:
    """A work dir with a scan config, and an environment whose XDG config dir holds a SLURM profile by a
    name found nowhere else."""
    scan = read_only(write_scan(tmp_path / "s.h5", SPEC))
    xdg = tmp_path / "xdg"
    profile = xdg / "snakemake" / "trust-site"
    profile.mkdir(parents=True)
    (profile / "profile.yaml").write_text((PROFILES / "maxiv" / "profile.yaml").read_text())
    config = {"input": [str(scan)], "outdir": str(tmp_path / "out"), "memory_mb": 400, "overhead_mb": 0,
              "recon": {"center": SPEC.center}, "report": False}
    return tmp_path, config, os.environ | {"XDG_CONFIG_HOME": str(xdg)}


def _audit(work: Path, config: dict, env: dict, limits: dict, *args: str) -> subprocess.CompletedProcess:
    (work / "scan.yaml").write_text(yaml.safe_dump(config))
    (work / "limits.json").write_text(json.dumps(limits))
    return subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", *args, "--configfile",
                           str(work / "scan.yaml")], cwd=work, capture_output=True, text=True, timeout=300,
                          check=False, env=env | {cluster.LIMITS_ENV: str(work / "limits.json")})


def test_the_audit_reads_the_profile_snakemake_finds_under_xdg_config_home(site, monkeypatch):
    work, config, env = site
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    assert audit.executor(["--profile", "trust-site"]) == "slurm"
    # the profile's executor is SLURM: the partitions are checked as the run checks them
    proc = _audit(work, config, env, {"gpu": _part("gpu")}, "--profile", "trust-site")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "config key 'slurm.cpu_partition': partition 'cpu' does not exist" in proc.stdout, proc.stdout


def test_a_down_or_drained_partition_fails_the_audit(site):
    work, config, env = site
    proc = _audit(work, config, env, {"cpu": _part("cpu", "DOWN"), "gpu": _part("gpu")}, "--profile", "trust-site")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tomosnake audit: partition 'cpu' is DOWN" in proc.stdout and "k = 1" in proc.stdout, proc.stdout
    proc = _audit(work, config, env, {"cpu": _part("cpu", usable=0), "gpu": _part("gpu")}, "--profile", "trust-site")
    assert proc.returncode == 1 and "partition 'cpu' has no node that can start a job" in proc.stdout, proc.stdout
    proc = _audit(work, config, env, {"cpu": _part("cpu"), "gpu": _part("gpu", "DRAIN")}, "--profile", "trust-site")
    assert proc.returncode == 0, proc.stdout  # the default backend sends nothing to the GPU partition


def test_node_and_partition_states_from_scontrol():
    parts = ("PartitionName=cpu MaxTime=60 Nodes=a,b State=UP\nPartitionName=gpu MaxTime=60 Nodes=g State=DRAIN\n"
             "PartitionName=old MaxTime=60 Nodes=c State=UP\n")
    nodes = ("NodeName=a CPUTot=4 RealMemory=8000 State=IDLE+DRAIN Partitions=cpu\n"
             "NodeName=b CPUTot=4 RealMemory=8000 State=MIXED Partitions=cpu\n"
             "NodeName=g CPUTot=4 RealMemory=8000 Gres=gpu:1 State=IDLE Partitions=gpu\n"
             "NodeName=c CPUTot=4 RealMemory=8000 State=DOWN* Partitions=old\n")
    limits = cluster.partitions(parts, nodes)
    assert (limits["cpu"].nodes, limits["cpu"].nodes_usable, limits["cpu"].unusable()) == (2, 1, None)
    assert limits["gpu"].unusable() == "partition 'gpu' is DRAIN"
    assert "no node that can start a job" in limits["old"].unusable()
    assert not cluster.node_usable("IDLE*") and cluster.node_usable("ALLOCATED")


@pytest.mark.skipif(HAS_TOMOPY, reason="checks a Python without TomoPy; this one has it")
def test_a_backend_the_jobs_cannot_import_is_refused_before_anything_is_queued(site):
    work, config, env = site
    config = config | {"recon": {"center": SPEC.center, "backend": "tomopy"}}
    proc = _audit(work, config, env, {"cpu": _part("cpu"), "gpu": _part("gpu")}, "--profile", "trust-site")
    assert proc.returncode == 1, proc.stdout
    assert "config key 'recon.backend': backend 'tomopy' needs the Python package 'tomopy'" in proc.stdout
    # the run itself, with retries: one line, exit 1, no job run (so none failed and none was retried)
    proc = run(work, config, "--retries", "3", check=False, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tomosnake:")]
    assert proc.returncode == 1 and len(lines) == 1 and "config key 'recon.backend'" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not (work / "out" / "s" / "plan.json").exists()
