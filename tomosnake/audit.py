"""``tomosnake audit``: what a run would submit and store, checked before anything is submitted.

``tomosnake audit [snakemake arguments]`` takes the arguments the real run will get (``--profile``,
``--configfile``, ``--config``, targets) and

1. runs the cheap ``plan`` checkpoint on this machine (``snakemake --until plan --executor local``),
   so that the number of chunks k and j is known;
2. asks Snakemake for a dry run (``-n``) with the same arguments and reads every job's resources
   from its job listing: the values the executor plugin turns into sbatch flags
   (``slurm_partition`` -> ``-p``, ``mem_mb`` -> ``--mem``, ``runtime`` -> ``-t`` minutes,
   threads -> ``--cpus-per-task``, ``gpu`` -> ``--gpus``);
3. prints per scan k, j, jobs per rule with their partition and resources, core-hours and GPU-hours
   (an upper bound: time limits x cores, not expected run times) and the disk space the scan needs
   (``estimates`` of its plan.json and the run's output settings, counted as preflight counts them,
   `preflight.storage`) against the free space of the output filesystem (unless the config
   says ``disk_check: false``).

The profiles are found as Snakemake finds them (its own lookup, which honours ``XDG_CONFIG_HOME``, then
the package's, as ``tomosnake run`` does), so the audit reads the profile the run will. When the run
would go to SLURM (``executor: slurm`` in the arguments or their profiles) and this machine has ``sinfo``,
the cluster's partitions are read first (`tomosnake.cluster`; or from the JSON file named by
``TOMOSNAKE_CLUSTER_LIMITS``): the run's partitions must exist and their nodes hold the jobs' threads,
memory and GPUs; the dry run clips time limits to MaxTime as the real run does; a partition the run
submits to that is DOWN, DRAIN or INACTIVE, or has no node up, fails the audit. The workflow's own
preflight runs in the audit's Snakemake, so a backend the jobs' Python cannot import (no ``--sdm``)
fails it too. A local run's budgets
are checked against this machine's memory instead.

It exits 1 when a scan cannot run: the cluster cannot serve it or would not start its jobs, a plan or the
dry run fails, or the output filesystem is too small.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from tomosnake import cluster, resources
from tomosnake.config import OutputConfig, TomoConfig
from tomosnake.paths import ScanFiles
from tomosnake.preflight import storage
from tomosnake.workflow import PROFILES, SNAKEFILE

# A job block of Snakemake's job listing: "rule NAME:" / "localcheckpoint NAME:" then "    key: value" lines.
_HEADER = re.compile(r"^(local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^    (\w+): (.*)$")
_PAIR_SEP = re.compile(r", (?=\w+=)")
# Resources that reach sbatch besides partition, memory, time and CPUs (plugin 2.8.0's mapping).
_SUBMIT_EXTRAS = ("slurm_account", "qos", "constraint", "gres", "slurm_extra", "cpus_per_task", "nodes", "tasks")


class AuditError(RuntimeError):
    """Snakemake could not plan or list the run; the message holds its error output."""


@dataclass(frozen=True)
class Job:
    """One job of the dry run, as Snakemake resolved it."""

    rule: str
    wildcards: dict[str, str]
    threads: int
    resources: dict[str, str]
    inputs: tuple[str, ...]
    local: bool

    @property
    def runtime_min(self) -> float:
        return float(self.resources.get("runtime", 0))

    @property
    def gpus(self) -> int:
        if "gpu" in self.resources:
            return int(self.resources["gpu"])
        m = re.search(r"gpu(?::[\w.-]+)?:(\d+)", self.resources.get("gres", ""))
        return int(m.group(1)) if m else 0

    def submission(self) -> tuple[str, ...]:
        """What decides this job's sbatch request: partition, threads, mem_mb, runtime, GPUs, extras."""
        r = self.resources
        extras = ", ".join(f"{k}={r[k]}" for k in _SUBMIT_EXTRAS if k in r)
        return (r.get("slurm_partition", "(default)"), str(self.threads), r.get("mem_mb", "-"),
                r.get("runtime", "-"), str(self.gpus), extras)


@dataclass
class ScanAudit:
    """The jobs of one scan and its plan."""

    scan: str
    plan_path: Path
    output: OutputConfig = field(default_factory=OutputConfig)
    jobs: list[Job] = field(default_factory=list)
    wall: str | None = None  # the expected wall time on the cluster (`wall_estimate`)

    def plan(self) -> dict:
        return json.loads(self.plan_path.read_text())

    @property
    def submitted(self) -> list[Job]:
        return [j for j in self.jobs if not j.local]

    def core_hours(self) -> float:
        return sum(j.runtime_min / 60 * j.threads for j in self.submitted)

    def gpu_hours(self) -> float:
        return sum(j.runtime_min / 60 * j.gpus for j in self.submitted)

    def storage(self) -> dict[str, int]:
        """Bytes: intermediates (preprocessed stack and reconstructed chunks), final outputs, and the peak
        while all exist (`preflight.storage`)."""
        return storage(self.plan()["estimates"], self.output)


def snakemake_command(args: Iterable[str], *extra: str) -> list[str]:
    """This workflow's ``snakemake`` call with the user's arguments, then ``extra`` (which win), as ``tomosnake
    run`` makes it (a package profile found by name where Snakemake would not find one)."""
    from tomosnake.cli import run_command

    return [*run_command(list(args)), "--nocolor", *extra]


# The workflow writes its validated config (JSON) to the file this variable names, for the audit to read.
CONFIG_ENV = "TOMOSNAKE_AUDIT_CONFIG"


def write_run_config(cfg: TomoConfig) -> None:
    """In the audit's Snakemake runs (`CONFIG_ENV` set), write the run's validated config where it says."""
    if path := os.environ.get(CONFIG_ENV):
        Path(path).write_text(cfg.model_dump_json())


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def profile_file(profile: str) -> Path | None:
    """The file Snakemake reads for ``--profile profile``: its own lookup (a path; else the current
    directory, the user's and the site's Snakemake config directories, which honour ``XDG_CONFIG_HOME``),
    else the package's profile of that name (as ``tomosnake run`` finds it)."""
    from snakemake.cli import get_profile_dir

    found = get_profile_dir(profile)
    if found is None and (PROFILES / profile).is_dir():
        found = get_profile_dir(str(PROFILES / profile))
    return found[1] if found else None


def profiles(args: list[str]) -> list[str]:
    """The profiles a ``snakemake`` call with these arguments reads, in order (``$SNAKEMAKE_PROFILE`` without any)."""
    out = []
    for i, a in enumerate(args):
        if a.startswith("--profile="):
            out.append(a.split("=", 1)[1])
        elif a == "--profile" and i + 1 < len(args):
            out.append(args[i + 1])
    env = os.environ.get("SNAKEMAKE_PROFILE")
    return out or ([env] if env else [])


def executor(args: list[str]) -> str:
    """The executor a ``snakemake`` call with these arguments uses: ``--executor``/``-e``, else the last
    profile (found as Snakemake finds it, `profile_file`) that names one, else local."""
    chosen = "local"
    for profile in profiles(args):
        f = profile_file(profile)
        if f is not None:
            chosen = (yaml.safe_load(f.read_text()) or {}).get("executor", chosen)
    for i, a in enumerate(args):
        if a in ("--executor", "-e") and i + 1 < len(args):
            chosen = args[i + 1]
        elif a.startswith("--executor="):
            chosen = a.split("=", 1)[1]
    return str(chosen)


def run_plans(args: list[str], env: dict[str, str] | None = None) -> str:
    """Make every scan's plan on this machine (the ``plan`` checkpoint is a local rule); Snakemake's output."""
    rc, text = _run(snakemake_command(args, "--until", "plan", "--executor", "local", "--cores", "1",
                                      "--retries", "0"), env)
    if rc != 0:
        raise AuditError(_errors(text))
    return text


# A dry run caps every job's threads at --cores, which it sets to 1 when neither the command line nor a
# profile gives it; a real run with a cluster executor has no such cap (each job is submitted with its
# rule's threads). So that the listing shows what will be submitted, the audit lifts the cap unless the
# user's own arguments set --cores.
UNCAPPED_CORES = "1000000"


def _sets_cores(args: Iterable[str]) -> bool:
    return any(a in ("--cores", "-c") or a.startswith(("--cores=", "-c")) for a in args)


def dry_run(args: list[str], env: dict[str, str] | None = None) -> str:
    """Snakemake's dry-run job listing for the user's arguments, threads as the jobs will get them."""
    cores = () if _sets_cores(args) else ("--cores", UNCAPPED_CORES)
    rc, text = _run(snakemake_command(args, "--dry-run", *cores), env)
    if rc != 0:
        raise AuditError(_errors(text))
    return text


def _errors(text: str) -> str:
    """What failed, from Snakemake's output: each "Error in rule" block's output and log lines and the
    error its job logged (``jobs.start`` logs a job's fatal error as CRITICAL); else the output's tail."""
    kept: list[str] = []
    in_block = False
    for line in text.splitlines():
        if line.startswith("tomosnake: "):  # a preflight check's one-line verdict
            kept.append(line)
        elif line.startswith("Error in rule "):
            in_block = True
            kept.append(line)
        elif in_block and (line.startswith(("    output: ", "    log: ")) or " CRITICAL " in line):
            kept.append(line)
        elif in_block and line.startswith(("Trying to restart", "Exiting", "Select jobs", "Complete log")):
            in_block = False
    return "\n".join(kept) if kept else "\n".join(text.splitlines()[-40:])


def parse_jobs(text: str, local_rules: frozenset[str]) -> list[Job]:
    """The jobs of a Snakemake job listing (dry run); ``local_rules`` run on the submitting machine."""
    jobs: list[Job] = []
    fields: dict[str, str] | None = None
    rule = ""

    def close() -> None:
        if fields is not None:
            jobs.append(Job(rule=rule, wildcards=_pairs(fields.get("wildcards", "")),
                            threads=int(fields.get("threads", 1)), resources=_pairs(fields.get("resources", "")),
                            inputs=tuple(fields.get("input", "").split(", ")) if fields.get("input") else (),
                            local=rule in local_rules))

    for line in text.splitlines():
        if m := _HEADER.match(line):
            close()
            fields, rule = {}, m.group(2)
        elif fields is not None and (m := _FIELD.match(line)):
            fields[m.group(1)] = m.group(2)
        elif fields is not None:
            close()
            fields = None
    close()
    return jobs


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in _PAIR_SEP.split(text) if "=" in item)


# Loads the workflow as a job's subprocess would (no preflight checks) with a placeholder scan: which
# rules are local does not depend on the config, but the Snakefile needs a scan to parse.
_LOCAL_RULES_CODE = """\
import sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, ExecMode, OutputSettings, Quietness, ResourceSettings,
                                      WorkflowSettings)
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(config={"input": ["a.h5"]}),
                      workflow_settings=WorkflowSettings(exec_mode=ExecMode.SUBPROCESS),
                      snakefile=Path(sys.argv[1]))._workflow
    print("LOCALRULES", *(r.name for r in wf.rules if r.name in wf._localrules or r.norun))
"""


def local_rules_process(snakefile: Path = SNAKEFILE) -> subprocess.Popen:
    """Start asking Snakemake which rules run on the submitting machine: the workflow's ``localrules`` and
    rules without a job body (like ``all``). A dry run does not say (it leaves that to the executor), so
    a child process loads the workflow through Snakemake's API (which changes the working directory)."""
    return subprocess.Popen([sys.executable, "-c", _LOCAL_RULES_CODE, str(snakefile)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def local_rules(proc: subprocess.Popen) -> frozenset[str]:
    """The answer of `local_rules_process`."""
    text, _ = proc.communicate()
    line = next((s for s in text.splitlines() if s.startswith("LOCALRULES")), None)
    if proc.returncode != 0 or line is None:
        raise AuditError(text)
    return frozenset(line.split()[1:])


def scans(jobs: list[Job], output: OutputConfig | None = None) -> list[ScanAudit]:
    """Group jobs by scan; a scan's plan is the ``<scan>/plan.json`` its jobs read."""
    by_scan: dict[str, ScanAudit] = {}
    for job in jobs:
        scan = job.wildcards.get("scan")
        if scan is None:
            continue
        if scan not in by_scan:
            plan = next((p for j in jobs if j.wildcards.get("scan") == scan for p in j.inputs
                         if p.endswith(ScanFiles.under("", scan).plan)), None)  # ".../<scan>/plan.json"
            if plan is None:
                raise AuditError(f"scan {scan}: no job reads its plan.json; has its plan run?")
            by_scan[scan] = ScanAudit(scan, Path(plan), output or OutputConfig())
        by_scan[scan].jobs.append(job)
    return list(by_scan.values())


def size(nbytes: float) -> str:
    """Bytes in decimal units with three significant digits: '15.1 MB', '2.05 TB'."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(nbytes) < 1000 or unit == "PB":
            break
        nbytes /= 1000
    return f"{nbytes:.3g} {unit}" if nbytes < 100 else f"{nbytes:.0f} {unit}"


def lamino_rows(plan: dict, out: TextIO) -> None:
    """Per recon job of a laminography plan: its slab, the detector rows it reads; the read amplification."""
    lam = plan.get("lamino")
    if not lam:
        return
    n_rows = plan["crop"][1] - plan["crop"][0]
    print(f"  laminography: tilt {lam['angle']:g} deg, {lam['height']} slices, lateral radius {lam['radius']:.1f} px, "
          f"{plan['slices_per_load']} slices per load", file=out)
    print(f"  {'recon job':>11}  {'slices':<13}{'detector rows':<15}{'rows read':>9}", file=out)
    for j, ((i0, i1), (r0, r1), n) in enumerate(zip(plan["sino_chunks"], lam["row_windows"], lam["rows_read"],
                                                    strict=True)):
        print(f"  {j:>11}  {f'{i0}-{i1}':<13}{f'{r0}-{r1}':<15}{n:>9}", file=out)
    print(f"  read amplification (rows read / {n_rows} detector rows): {lam['read_amplification']:.2f} with "
          f"geometric windows, {lam['uniform_amplification']:g} for a uniform split (every load reads every row)",
          file=out)


def report(audits: list[ScanAudit], out: TextIO, disk_check: bool = True) -> bool:
    """Print the audit; return whether every scan fits its output filesystem (True without ``disk_check``)."""
    need_by_fs: dict[int, int] = defaultdict(int)
    free_by_fs: dict[int, tuple[int, Path]] = {}
    for a in audits:
        plan, st = a.plan(), a.storage()
        counts = Counter(j.rule for j in a.jobs)
        print(f"scan {a.scan}  (plan: {a.plan_path})", file=out)
        print(f"  k = {plan['k']} preprocessing chunks, j = {plan['j']} reconstruction chunks, "
              f"memory budget {plan['memory_mb']:g} MB per job", file=out)
        print(f"  {'rule':<18}{'jobs':>5}  {'runs on':<8}{'partition':<12}{'threads':>7}{'mem_mb':>8}"
              f"{'runtime_min':>12}{'gpu':>4}  other", file=out)
        groups = Counter((j.rule, j.local, j.submission()) for j in a.jobs)
        for (rule, local, sub), n in sorted(groups.items(), key=lambda g: [j.rule for j in a.jobs].index(g[0][0])):
            partition, threads, mem, runtime, gpu, extras = sub
            where = "local" if local else "SLURM"
            if local:
                partition, mem, runtime, gpu = "-", "-", "-", "-"
            print(f"  {rule:<18}{n:>5}  {where:<8}{partition:<12}{threads:>7}{mem:>8}{runtime:>12}{gpu:>4}  {extras}",
                  file=out)
        print(f"  jobs per rule: {dict(counts)}", file=out)
        lamino_rows(plan, out)
        if a.wall:
            print(f"  {a.wall}", file=out)
        print(f"  core-hours <= {a.core_hours():.2f}, GPU-hours <= {a.gpu_hours():.2f} "
              "(upper bounds: time limit x cores of each submitted job; first attempt, a retry doubles it)",
              file=out)
        print(f"  storage: intermediate {size(st['intermediate'])}, final {size(st['final'])}, "
              f"peak {size(st['peak'])} (plan.json estimates)", file=out)
        base = a.plan_path.parent.parent  # the output directory
        while not base.exists():
            base = base.parent
        dev = os.stat(base).st_dev
        need_by_fs[dev] += st["peak"]
        free_by_fs[dev] = (shutil.disk_usage(base).free, base)
    fits = True
    if not disk_check:
        print("disk: not checked (config key 'disk_check' is false)", file=out)
        return fits
    for dev, need in need_by_fs.items():
        free, base = free_by_fs[dev]
        ok = need <= free
        fits &= ok
        print(f"disk: {size(need)} needed on the filesystem of {base}, {size(free)} free: "
              f"{'OK' if ok else 'NOT ENOUGH SPACE'}", file=out)
    return fits


def wall_estimate(a: ScanAudit, cfg: TomoConfig, limits: dict[str, cluster.Partition] | None) -> str:
    """The scan's expected wall time on the CPU partition's nodes (this machine without a cluster), from the
    model that sets the jobs' time limits (`resources.cluster_seconds`)."""
    from tomosnake.stages.plan import Plan

    part = (limits or {}).get(cfg.slurm.cpu_partition)
    if part is not None:
        nodes, cpus, io = part.nodes or 1, part.cpus, resources.CLUSTER_IO_BYTES_PER_S
        where = f"{nodes} node(s) of {cpus} CPUs ({part.name}), storage at {io / 1e9:g} GB/s"
    else:
        nodes, cpus, io = 1, os.cpu_count() or 1, resources.IO_BYTES_PER_S
        where = f"this machine ({cpus} CPUs, storage at {io / 1e9:g} GB/s)"
    plan = Plan.read(a.plan_path)
    stages = resources.cluster_seconds(plan, cfg, nodes, cpus, io)
    total = sum(stages.values())
    parts = ", ".join(f"{k} {v / 60:.1f}" for k, v in stages.items())
    per_job = resources.expected_seconds(plan, cfg)  # the longest job of each rule
    core_h = sum(per_job.get(j.rule, 0.0) * j.threads for j in a.submitted) / 3600
    return (f"expected wall time on {where}: {total / 60:.1f} min ({parts} min; without the plan and "
            f"report); expected core-hours <= {core_h:.2f} (each job as its rule's longest; time limits are "
            f"{resources.SAFETY:g}x a job's expected time, at least {resources.MIN_MINUTES} min)")


def cluster_line(limits: dict[str, cluster.Partition]) -> str:
    def one(p: cluster.Partition) -> str:
        time = "no MaxTime" if p.max_time_min == cluster.UNLIMITED else f"MaxTime {p.max_time_min:g} min"
        return f"{p.name}: {p.nodes} node(s), {time}, {p.cpus} CPUs, {p.memory_mb:g} MB, {p.gpus} GPU(s) per node"
    return "cluster: " + "; ".join(one(p) for p in limits.values())


def idle_partitions(audits: list[ScanAudit], limits: dict[str, cluster.Partition]) -> list[str]:
    """Why each partition the run submits to cannot start a job now (DOWN, DRAIN, no usable node)."""
    used = sorted({j.resources["slurm_partition"] for a in audits for j in a.submitted
                   if "slurm_partition" in j.resources})
    return [why for name in used if name in limits and (why := limits[name].unusable())]


def audit(args: list[str], out: TextIO = sys.stdout) -> int:
    """Run the audit for these Snakemake arguments; 0 if every scan can run, 1 otherwise."""
    asking = local_rules_process()
    limits: dict[str, cluster.Partition] | None = None
    with tempfile.TemporaryDirectory(prefix="tomosnake-audit-") as tmp:
        env = os.environ | {CONFIG_ENV: str(Path(tmp) / "config.json")}
        try:
            env[cluster.EXECUTOR_ENV] = executor(args)
            if env[cluster.EXECUTOR_ENV] == "slurm" and (cluster.LIMITS_ENV in env or cluster.available()):
                if cluster.LIMITS_ENV not in env:
                    env[cluster.LIMITS_ENV] = str(Path(tmp) / "limits.json")
                    cluster.save(cluster.read_cluster(), env[cluster.LIMITS_ENV])
                limits = cluster.load(env[cluster.LIMITS_ENV])
                print(cluster_line(limits), file=out)
            run_plans(args, env)
            text = dry_run(args, env)
            local = local_rules(asking)
            if "Nothing to be done" in text:
                print("Nothing to be done: every target is up to date, nothing would be submitted.", file=out)
                return 0
            run_config = json.loads(Path(env[CONFIG_ENV]).read_text())
            audits = scans(parse_jobs(text, local), OutputConfig.model_validate(run_config.get("output", {})))
            disk_check = run_config.get("disk_check", True)
            limits = cluster.load(env[cluster.LIMITS_ENV]) if cluster.LIMITS_ENV in env else None
            cfg = TomoConfig.model_validate(run_config)
            for a in audits:
                a.wall = wall_estimate(a, cfg, limits)
        except (AuditError, cluster.ClusterError, OSError, subprocess.SubprocessError) as err:
            print(f"tomosnake audit: the run cannot start:\n{err}", file=out)
            return 1
        finally:
            if asking.poll() is None:
                asking.kill()
                asking.wait()
    if not audits:
        print("tomosnake audit: no scan in the run (config key 'input' or 'tori')", file=out)
        return 1
    total_core = sum(a.core_hours() for a in audits)
    total_gpu = sum(a.gpu_hours() for a in audits)
    fits = report(audits, out, disk_check)
    if len(audits) > 1:
        print(f"all {len(audits)} scans: core-hours <= {total_core:.2f}, GPU-hours <= {total_gpu:.2f}", file=out)
    if not fits:
        print("tomosnake audit: not enough disk space for the run", file=out)
    idle = idle_partitions(audits, limits) if limits is not None else []
    for why in idle:
        print(f"tomosnake audit: {why}: the run's jobs there would not start", file=out)
    return 0 if fits and not idle else 1


def usage() -> str:
    """This module's docstring as help text: the markup of Python docstrings (``x``, `x`) left out."""
    text = re.sub(r"``([^`]+)``", r"\1", __doc__ or "")
    return re.sub(r"`([^`]+)`", r"\1", text).strip()


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    return audit(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
