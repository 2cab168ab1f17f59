"""The cluster's limits from ``scontrol`` text, the config checked against them, and the resource model.

The parsing tests use records in the exact shape ``scontrol show partition/node -o`` prints (Slurm 22.05:
values with spaces, ``UNLIMITED``, day-hour time limits, typed GPUs); the SLURM tests read the real
test cluster of .ci/slurm and run ``tomosnake audit`` and ``snakemake --profile slurm-test`` against it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tomosnake import audit, cluster, resources
from tomosnake.cli import snakemake_command
from tomosnake.config import validate
from tomosnake.workflow import PROFILES
from tomosnake.phantom import PhantomSpec, write_scan

PARTITIONS = """\
PartitionName=cpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=7-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=cn[01-40] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=3840 TotalNodes=40 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerCPU=5000 MaxMemPerNode=UNLIMITED TRES=cpu=3840,mem=20000G,node=40,billing=3840
PartitionName=gpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=2-12:30:00 MinNodes=0 LLN=NO MaxCPUsPerNode=48 Nodes=gn[1-2] PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=128 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=256000 TRES=cpu=128,mem=1000G,node=2
PartitionName=short AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A MaxTime=60 Nodes=cn01 State=DOWN TotalCPUs=96 TotalNodes=1
"""
NODES = """\
NodeName=cn01 Arch=x86_64 CoresPerSocket=48  CPUAlloc=0 CPUEfctv=96 CPUTot=96 CPULoad=0.33 AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=cn01 NodeHostName=cn01 Version=22.05.8 OS=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)  RealMemory=512000 AllocMem=0 FreeMem=500000 Sockets=2 Boards=1 State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=cpu,short  BootTime=2026-12-02T01:01:50 SlurmdStartTime=2026-12-02T01:04:03 CfgTRES=cpu=96,mem=500G,billing=96 AllocTRES= CapWatts=n/a
NodeName=gn1 Arch=x86_64 CoresPerSocket=32  CPUAlloc=0 CPUTot=64 Gres=gpu:a100:4(S:0-1),shard:8 NodeAddr=gn1 OS=Linux 6.1 #1 SMP RealMemory=500000 State=MIXED Partitions=gpu
NodeName=gn2 Arch=x86_64 CoresPerSocket=32  CPUAlloc=0 CPUTot=64 Gres=gpu:2 NodeAddr=gn2 OS=Linux 6.1 #1 SMP RealMemory=500000 State=IDLE Partitions=gpu
"""


def test_parse_partitions_and_nodes():
    limits = cluster.partitions(PARTITIONS, NODES)
    assert limits["cpu"] == cluster.Partition("cpu", 7 * 1440, 96, 512000, 0, nodes=1, nodes_usable=1)
    # MaxCPUsPerNode and MaxMemPerNode cap the nodes; the typed GPU count of the larger node
    assert limits["gpu"] == cluster.Partition("gpu", 2 * 1440 + 12 * 60 + 30, 48, 256000, 4, nodes=2, nodes_usable=2)
    assert limits["short"].max_time_min == 60 and not limits["short"].up and limits["short"].state == "DOWN"


@pytest.mark.parametrize("text, minutes", [("UNLIMITED", cluster.UNLIMITED), ("30", 30), ("1:30", 1.5),
                                           ("02:00:00", 120), ("1-0", 1440), ("1-02:03", 1563),
                                           ("3-00:00:30", 4320.5)])
def test_time_limits(text, minutes):
    assert cluster.minutes(text) == minutes


def test_gres_gpus():
    assert cluster.gpus("gpu:a100:4(S:0-1),shard:8") == 4
    assert cluster.gpus("(null)") == 0
    assert cluster.gpus("shard:8,gpu:2") == 2


def _check(**config):
    cluster.check(resources.requests(validate(config)), cluster.partitions(PARTITIONS, NODES))


def test_requests_within_the_limits_pass():
    _check(threads=96, memory_mb=400_000)
    _check(threads=48, memory_mb=200_000, recon={"backend": "tomocupy"})


@pytest.mark.parametrize("config, message", [
    ({"threads": 97}, "config key 'threads': 97 > 96 CPUs per node of partition 'cpu'"),
    ({"threads": 64, "recon": {"backend": "tomocupy"}},
     "config key 'threads': 64 > 48 CPUs per node of partition 'gpu'"),
    ({"memory_mb": 600_000}, "config key 'memory_mb': a job needs"),
    ({"recon_memory_mb": 300_000, "recon": {"backend": "tomocupy"}}, "config key 'recon_memory_mb'"),
    ({"slurm": {"cpu_partition": "nosuch"}}, "config key 'slurm.cpu_partition': partition 'nosuch' does not exist"),
])
def test_requests_beyond_the_limits_name_the_key(config, message):
    with pytest.raises(cluster.ClusterError) as err:
        _check(**config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_memory_request_holds_the_snakemake_processes():
    cfg = validate({"memory_mb": 2000, "recon_memory_mb": 5000})
    assert resources.memory_mb(cfg, "preprocess_chunk") == 2000 + resources.WRAPPER_MB
    assert resources.memory_mb(cfg, "recon_chunk") == 5000 + resources.WRAPPER_MB


def test_retries_grow_within_the_partition():
    part = cluster.Partition("cpu", 600, 96, 10_000, 0)
    first = resources.Resources(mem_mb=4000, runtime=400, threads=4, partition="cpu")
    second = resources.for_attempt(first, 2, part)
    third = resources.for_attempt(first, 3, part)
    assert (second.mem_mb, second.runtime) == (6000, 600)  # time clipped to MaxTime
    assert (third.mem_mb, third.runtime) == (9000, 600)
    assert resources.for_attempt(first, 4, part).mem_mb == 10_000  # clipped to the node
    assert resources.for_attempt(first, 1, None) == first


def test_audit_knows_where_the_run_goes():
    maxiv, local = str(PROFILES / "maxiv"), str(PROFILES / "local")
    assert audit.executor(["--profile", maxiv, "--configfile", "x.yaml"]) == "slurm"
    assert audit.executor([f"--profile={local}"]) == "local"
    assert audit.executor(["--profile", maxiv, "--executor", "local"]) == "local"
    assert audit.executor(["--configfile", "x.yaml"]) == "local"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("cluster")
    scan = write_scan(work / "small.h5", PhantomSpec(n_proj=60, n_rows=4, n_cols=32))
    return work, {"input": [str(scan)], "outdir": str(work / "out"), "memory_mb": 400, "recon": {"center": 16}}


def test_local_run_refuses_a_budget_beyond_this_machine(small):
    """Locally (no SLURM): one line naming the key, exit 1, nothing run (threads are capped at --cores)."""
    work, config = small
    cfg = work / "local.yaml"
    cfg.write_text(yaml.safe_dump(config | {"recon_memory_mb": 2 * cluster.machine_memory_mb(), "threads": 512}))
    proc = subprocess.run([*snakemake_command("local", {}, "--configfile", str(cfg), "--directory", str(work))],
                          cwd=work, capture_output=True, text=True, timeout=300, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("tomosnake: ")]
    assert len(lines) == 1 and "config key 'recon_memory_mb'" in lines[0] and "on this machine" in lines[0], text
    assert not list((work / "out").glob("*/plan.json"))  # nothing ran (the run's state folder may exist)


# ------------------------------------------------------------------------------------ the real cluster
def _no_cluster() -> str | None:
    if not cluster.available():
        return "SLURM is not installed"
    try:
        cluster.read_cluster(timeout=10)
    except (cluster.ClusterError, subprocess.SubprocessError) as err:
        return f"no SLURM controller answers: {err}"
    return None


NO_CLUSTER = _no_cluster()
on_slurm = pytest.mark.skipif(NO_CLUSTER is not None, reason=NO_CLUSTER or "")


@pytest.mark.slurm
@on_slurm
def test_real_cluster_is_parsed():
    limits = cluster.read_cluster()
    assert {"cpu", "gpu"} <= set(limits) and limits["gpu"].gpus >= 1
    assert all(p.cpus >= 1 and p.memory_mb > 0 for p in limits.values())


def _too_much() -> dict:
    """Values no node of the real cluster serves: more threads than its CPUs, a budget above its memory."""
    limits = cluster.read_cluster()
    return {"threads": limits["cpu"].cpus + 1, "memory_mb": limits["cpu"].memory_mb + 1}


@pytest.mark.slurm
@on_slurm
@pytest.mark.parametrize("key", ["threads", "memory_mb", "slurm.cpu_partition"])
def test_audit_refuses_what_the_cluster_cannot_serve(small, key):
    work, config = small
    too_much = _too_much()
    bad = {"slurm": {"cpu_partition": "nosuch"}} if key == "slurm.cpu_partition" else {key: too_much[key]}
    cfg = work / f"{key}.yaml"
    cfg.write_text(yaml.safe_dump(config | bad))
    proc = subprocess.run([sys.executable, "-m", "tomosnake.cli", "audit", "--profile",
                           str(PROFILES / "slurm-test"), "--configfile", str(cfg)],
                          cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("tomosnake: ")]
    assert len(lines) == 1 and f"config key '{key}'" in lines[0], proc.stdout


@pytest.mark.slurm
@on_slurm
def test_slurm_run_stops_before_queueing(small):
    """The same check in a real run: one line, exit 1, no job submitted (the executor never asks sbatch)."""
    work, config = small
    cfg = work / "run.yaml"
    cfg.write_text(yaml.safe_dump(config | {"threads": _too_much()["threads"]}))
    proc = subprocess.run(["timeout", "-k", "10", "240",
                           *snakemake_command("slurm-test", {}, "--configfile", str(cfg), "--directory", str(work))],
                          cwd=work, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("tomosnake: ")]
    assert len(lines) == 1 and "config key 'threads'" in lines[0], text[-3000:]
    assert "submitted" not in text.lower() and not list((work / "out").glob("*/plan.json")), text[-3000:]
