# Config loading and validation, paths, and the input functions that read the plan checkpoint.
import os
from pathlib import Path

from tomosnake import audit, cluster, resources
from tomosnake import config as tconfig
from tomosnake import outdir, placement, preflight
from tomosnake import workflow as tworkflow
from tomosnake.analysis import targets as atargets
from tomosnake.config import stage_dict
from tomosnake.jobs import exit_promptly_at_shutdown, return_freed_memory, run_job, run_jobs_in_this_process
from tomosnake.paths import ScanFiles
from tomosnake.stages.plan import Plan

# Bad input stops here, before any job is queued: one line naming the file, dataset or key, exit 1.
# Only the main process checks; jobs re-parsing this file (cluster, subprocess) skip it.
# Then the run moves into its output directory (lock, resolved config, safe input names): see
# tomosnake/outdir.py. Jobs read the config the main process resolved, never from their command line.
if workflow.is_main_process:
    # without --sdm the jobs run in this Python environment: a backend it lacks is refused now
    preflight.check_or_exit(
        config,
        jobs_share_env=not workflow.deployment_settings.deployment_method,
        configfiles=workflow.config_settings.configfiles,
    )
    outdir.enter(workflow, config)
else:
    outdir.job_config(workflow, config)
CFG = tconfig.load(config)
OUT = CFG.outdir
if workflow.is_main_process:
    audit.write_run_config(CFG)  # for `tomosnake audit`, when it runs this

# Local and SLURM jobs inherit this environment (see resources.JOB_ENV); this process, which runs jobs
# itself (tomosnake/jobs.py), gets its effect now.
os.environ.update(resources.JOB_ENV)
return_freed_memory()
exit_promptly_at_shutdown()


def conda_env(stage: str) -> str:
    return tworkflow.conda_env(stage, CFG.recon.backend)


SCANS = preflight.scans(CFG)
FILES = ScanFiles.under(OUT)  # every path pattern of a scan's files, with the wildcards {scan}, {k}, {j}


wildcard_constraints:
    scan="[A-Za-z0-9._-]+",
    k=r"\d+",
    j=r"\d+",


def raw_input(w) -> str:
    """The scan's identity file (the content fingerprints of every file it is read from, rewritten only when
    one changes: see tomosnake/outdir.py), so a replaced input reruns what depends on it whatever its date,
    and a touched one nothing; jobs open the real files (outdir.scan_input). Every run's DAG holds the plan,
    whose input this is: where the run's jobs are set to run in this process."""
    run_jobs_in_this_process(workflow)
    return f"{OUT}/{outdir.input_id(w.scan)}"


def plan_path(scan: str) -> str:
    return ScanFiles.under(OUT, scan).plan


def plan_of(w) -> Plan:
    """The scan's plan; using it makes the rule wait for the checkpoint."""
    return Plan.cached(checkpoints.plan.get(scan=w.scan).output.plan)


def preproc_chunks(w) -> list[str]:
    return [ScanFiles.under(OUT, w.scan).preproc_chunk(k) for k in range(plan_of(w).k)]


def recon_chunks(w) -> list[str]:
    return [ScanFiles.under(OUT, w.scan).recon_chunk(j) for j in range(plan_of(w).j)]


def try_inputs(w) -> dict:
    """What try_center and try_lamino read: the pre-processed data, or after cleanup the raw file (the job then
    pre-processes only the rows it needs): recreating the pre-processed data would make the finished run's
    next invocation redo every stage after them."""
    files = ScanFiles.under(OUT, w.scan)
    if Path(files.cleanup_done).exists():
        return {"raw": raw_input(w), "plan": files.plan}
    return {"vds": files.preproc_vds, "chunks": preproc_chunks(w), "plan": files.plan}


def cluster_limits():
    """The SLURM partitions' limits when this run submits to SLURM (else None), the config checked
    against them once: a request the cluster cannot serve stops the run with one line, nothing queued.
    A local run checks the budgets against this machine's memory instead."""
    if "limits" not in _CLUSTER:
        plugin = workflow.executor_plugin
        executor = os.environ.get(cluster.EXECUTOR_ENV) or (plugin.cli_prefix if plugin is not None else None)
        executor = executor if workflow.is_main_process else None
        if executor == "local":
            cluster.local_or_exit(CFG)
        _CLUSTER["limits"] = cluster.limits_or_exit(CFG) if executor == "slurm" else None
    return _CLUSTER["limits"]


_CLUSTER: dict = {}


def _model(path: str) -> dict:
    """`resources.model` of the scan's plan (before the plan: without one), once per version of the plan file."""
    p = Path(path)
    key = (path, p.stat().st_mtime_ns) if p.exists() else (path, None)
    if key not in _MODELS:
        _MODELS[key] = resources.model(Plan.cached(p) if p.exists() else None, CFG)
    return _MODELS[key]


_MODELS: dict = {}


def job_resources(rule: str) -> dict:
    """A rule's mem_mb and runtime from the package's model (`tomosnake.resources`), per job and attempt,
    clipped to the cluster's limits; partition, GPU, account and QoS from `tomosnake.placement`."""

    def request(w, attempt) -> resources.Resources:
        first = _model(plan_path(w.scan))[rule]
        limits = cluster_limits()
        return resources.for_attempt(first, attempt, limits.get(first.partition) if limits else None)

    return dict(
        mem_mb=lambda w, attempt: request(w, attempt).mem_mb,
        runtime=lambda w, attempt: request(w, attempt).runtime,
        **placement.slurm_resources(CFG, rule),
    )


def rule_threads(rule: str):
    """A rule's threads for each job: the package's model of the scan's plan (`resources.job_threads`)."""
    return lambda w: _model(plan_path(w.scan))[rule].threads


def export_targets(scan: str) -> list[str]:
    """The optional copies of a scan's volume the config asks for."""
    files, out = ScanFiles.under(OUT, scan), []
    if CFG.output.ome_zarr:
        out.append(files.ome_zarr)
    if CFG.output.tiff:
        out.append(files.tiff)
    return out


def cleanup_inputs(w) -> list[str]:
    files = ScanFiles.under(OUT, w.scan)
    inputs = [files.volume, *export_targets(w.scan), *atargets.outputs(CFG, files)]
    if CFG.report:
        inputs.append(files.report)
    return inputs


def final_targets(w=None) -> list[str]:
    cluster_limits()
    targets = []
    for scan in SCANS:
        files = ScanFiles.under(OUT, scan)
        if CFG.cleanup:
            targets.append(files.cleanup_done)
        else:
            targets += [files.volume, *atargets.outputs(CFG, files)]
            if CFG.report:
                targets.append(files.report)
    return targets
