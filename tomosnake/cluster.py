"""What the SLURM cluster allows, read from ``scontrol``, and the config checked against it.

`read_cluster` asks ``scontrol show partition -o`` and ``scontrol show node -o`` (one record a line,
``Key=Value`` fields; values may hold spaces, e.g. ``OS=Linux 6.1 #1 SMP``) and reduces each partition
to its limits: MaxTime, and the CPUs, memory and GPUs of its largest node (a job runs on one node).
`check` compares a config's requests with them and raises `ClusterError` with one line naming the
config key and the limit. No Python binding of Slurm's API is installable without the cluster's own
headers (pyslurm must match its Slurm version), so the text output is parsed here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tomosnake.config import TomoConfig

UNLIMITED = math.inf
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][\w/:.]*)=")


class ClusterError(ValueError):
    """A config that cannot run on the cluster; the text is one line naming the key and the limit."""


@dataclass(frozen=True)
class Partition:
    """A partition's limits for one job (one node): minutes, CPUs, MB of memory, GPUs."""

    name: str
    max_time_min: float
    cpus: int
    memory_mb: float
    gpus: int
    up: bool = True
    state: str = "UP"  # the partition's State: UP, DOWN, DRAIN or INACTIVE (only UP starts jobs)
    nodes: int | None = None  # its nodes, and those that can start a job (not down, drained, failing); None:
    nodes_usable: int | None = None  # unknown (a hand-written limits file)

    def unusable(self) -> str | None:
        """Why no job sent to this partition would start now, or None."""
        if self.state != "UP":
            return f"partition '{self.name}' is {self.state}"
        if self.nodes is not None and self.nodes_usable == 0:
            return f"partition '{self.name}' has no node that can start a job (all {self.nodes} down or drained)"
        return None


# Node states (``scontrol show node``'s State, '+'-joined) in which a node starts no new job; a trailing '*'
# means it does not respond.
NODE_UNUSABLE = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "INVAL", "NOT_RESPONDING",
                 "POWERED_DOWN", "POWER_DOWN", "POWERING_DOWN", "FUTURE", "MAINT", "REBOOT_ISSUED"}


def node_usable(state: str) -> bool:
    """Whether a node in ``state`` (e.g. ``IDLE``, ``MIXED+DRAIN``, ``DOWN*``) can start a job."""
    flags = set(state.upper().rstrip("*").replace("+", " ").split())
    return not state.endswith("*") and not flags & NODE_UNUSABLE


def fields(record: str) -> dict[str, str]:
    """The ``Key=Value`` fields of one ``scontrol -o`` record; a value runs up to the next `` Key=``."""
    marks = list(_FIELD.finditer(record))
    out = {}
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        out[m.group(1)] = record[m.end():nxt.start() if nxt else len(record)].strip()
    return out


def minutes(text: str) -> float:
    """A SLURM time limit in minutes: ``UNLIMITED``/``INFINITE``, ``M``, ``M:S``, ``H:M:S``, ``D-H``,
    ``D-H:M``, ``D-H:M:S``."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return UNLIMITED
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        h, m, s = (parts + [0, 0])[:3]
        return int(days) * 1440 + h * 60 + m + s / 60
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def _number(text: str | None, default: float = UNLIMITED) -> float:
    """``123``, ``123M``, ``4G``, ``UNLIMITED`` -> MB (or a plain count)."""
    if not text:
        return default
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text.strip().upper())
    if m is None:
        return default
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return float(m.group(1)) * scale


def gpus(gres: str) -> int:
    """GPUs in a node's ``Gres`` field: ``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:8``; 0 if none."""
    return sum(int(m.group(1)) for m in re.finditer(r"(?:^|,)gpu(?::[\w.-]+)?:(\d+)", gres or ""))


def partitions(partition_text: str, node_text: str) -> dict[str, Partition]:
    """Each partition's limits from ``scontrol show partition -o`` and ``scontrol show node -o`` output.

    Nodes are matched to partitions by their ``Partitions`` field (no host list to expand); a node's CPUs
    are ``CPUTot`` capped by the partition's ``MaxCPUsPerNode``, its memory ``RealMemory`` capped by
    ``MaxMemPerNode``.
    """
    nodes = [fields(line) for line in node_text.splitlines() if line.startswith("NodeName=")]
    out = {}
    for line in partition_text.splitlines():
        if not line.startswith("PartitionName="):
            continue
        p = fields(line)
        name = p["PartitionName"]
        members = [n for n in nodes if name in n.get("Partitions", "").split(",")]
        cpus = max((int(_number(n.get("CPUTot"), 0)) for n in members), default=0)
        mem = max((_number(n.get("RealMemory"), 0) for n in members), default=0)
        gpu = max((gpus(n.get("Gres", "")) for n in members), default=0)
        state = p.get("State", "UP").upper()
        out[name] = Partition(name=name, max_time_min=minutes(p.get("MaxTime", "UNLIMITED")),
                              cpus=int(min(cpus, _number(p.get("MaxCPUsPerNode")))),
                              memory_mb=min(mem, _number(p.get("MaxMemPerNode"))), gpus=gpu,
                              up=state == "UP", state=state, nodes=len(members),
                              nodes_usable=sum(node_usable(n.get("State", "")) for n in members))
    return out


def available() -> bool:
    """Whether this machine can talk to a SLURM cluster (``sinfo`` and ``scontrol`` on PATH)."""
    return shutil.which("sinfo") is not None and shutil.which("scontrol") is not None


def read_cluster(timeout: float = 30) -> dict[str, Partition]:
    """The limits of every partition of the cluster this machine submits to."""
    def ask(*what: str) -> str:
        proc = subprocess.run(["scontrol", "show", *what, "-o"], capture_output=True, text=True, timeout=timeout,
                              check=False)
        if proc.returncode != 0:
            raise ClusterError(f"'scontrol show {' '.join(what)}' failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    return partitions(ask("partition"), ask("node"))


@dataclass(frozen=True)
class Request:
    """What one rule's jobs ask for, and the config keys that set each part."""

    partition: str
    partition_key: str
    threads: int
    memory_mb: float
    memory_key: str
    gpus: int = 0
    runtime_min: float = 0.0


def check(requests: list[Request], limits: dict[str, Partition]) -> None:
    """Raise `ClusterError` naming the first config key whose value the cluster cannot serve."""
    for r in requests:
        part = limits.get(r.partition)
        if part is None:
            raise ClusterError(f"config key '{r.partition_key}': partition '{r.partition}' does not exist on this "
                               f"cluster (it has {', '.join(sorted(limits)) or 'none'})")
        where = f"of partition '{part.name}'"
        if r.threads > part.cpus:
            raise ClusterError(f"config key 'threads': {r.threads} > {part.cpus} CPUs per node {where}")
        if r.memory_mb > part.memory_mb:
            raise ClusterError(f"config key '{r.memory_key}': a job needs {r.memory_mb:.0f} MB (budget plus the "
                               f"Snakemake processes in each job) > {part.memory_mb:.0f} MB per node {where}")
        if r.gpus > part.gpus:
            raise ClusterError(f"config key '{r.partition_key}': the jobs need {r.gpus} GPU(s), nodes {where} "
                               f"have {part.gpus}")


# The audit reads the cluster once and hands its limits to the runs it starts, in a JSON file named here
# (set by hand, it audits against another cluster's limits), and the executor the real run will use.
LIMITS_ENV = "TOMOSNAKE_CLUSTER_LIMITS"
EXECUTOR_ENV = "TOMOSNAKE_EXECUTOR"


def save(limits: dict[str, Partition], path: str) -> None:
    Path(path).write_text(json.dumps({n: asdict(p) for n, p in limits.items()}))


def load(path: str) -> dict[str, Partition]:
    return {n: Partition(**p) for n, p in json.loads(Path(path).read_text()).items()}


def checked_limits(cfg: TomoConfig) -> dict[str, Partition] | None:
    """The cluster's limits with the config checked against them (`ClusterError`); None without SLURM."""
    from tomosnake import resources

    if LIMITS_ENV in os.environ:
        limits = load(os.environ[LIMITS_ENV])
    elif available():
        limits = read_cluster()
    else:
        return None
    check(resources.requests(cfg), limits)
    return limits


def limits_or_exit(cfg: TomoConfig) -> dict[str, Partition] | None:
    """`checked_limits`; on failure print its one line to stderr and exit with status 1 (nothing is queued)."""
    try:
        return checked_limits(cfg)
    except (ClusterError, OSError, subprocess.SubprocessError) as err:
        print(f"tomosnake: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


def machine_memory_mb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 20)


def check_local(cfg: TomoConfig) -> None:
    """A run on this machine: a job budget above its memory cannot run (threads above its CPUs are capped
    by Snakemake at ``--cores``)."""
    total = machine_memory_mb()
    for stage in ("preprocess", "recon", None):
        if cfg.budget_mb(stage) > total:
            raise ClusterError(f"config key '{cfg.budget_key(stage)}': {cfg.budget_mb(stage):g} MB per job > "
                               f"{total:.0f} MB of memory on this machine")


def local_or_exit(cfg: TomoConfig) -> None:
    """`check_local`; on failure print its one line to stderr and exit with status 1."""
    try:
        check_local(cfg)
    except ClusterError as err:
        print(f"tomosnake: {err}", file=sys.stderr, flush=True)
        sys.exit(1)
