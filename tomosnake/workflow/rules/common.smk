# Config loading and validation, paths, and the input functions that read the plan checkpoint.
import math
from pathlib import Path

from tomosnake import config as tconfig
from tomosnake import outdir, placement, preflight
from tomosnake import workflow as tworkflow
from tomosnake.config import stage_dict
from tomosnake.paths import ScanFiles
from tomosnake.stages.plan import Plan

# Bad input stops here, before any job is queued: one line naming the file, dataset or key, exit 1.
# Only the main process checks; jobs re-parsing this file (cluster, subprocess) skip it.
# Then the run moves into its output directory (lock, resolved config, safe input names): see
# tomosnake/outdir.py. Jobs read the config the main process resolved, never from their command line.
if workflow.is_main_process:
    preflight.check_or_exit(config)
    outdir.enter(workflow, config)
else:
    outdir.job_config(workflow, config)
CFG = tconfig.load(config)
OUT = CFG.outdir


def conda_env(stage: str) -> str:
    return tworkflow.conda_env(stage, CFG.recon.backend)


SCANS = preflight.scans(CFG)
FILES = ScanFiles.under(OUT)  # every path pattern of a scan's files, with the wildcards {scan}, {k}, {j}


wildcard_constraints:
    scan="[A-Za-z0-9._-]+",
    k=r"\d+",
    j=r"\d+",


def raw_input(w) -> str:
    """The scan's raw file under its safe name (a symlink in the outdir; jobs open the real file)."""
    return f"{OUT}/{outdir.input_alias(w.scan)}"


def stitch_inputs(w) -> list[str]:
    """Every file a stitched scan is joined from (none otherwise), so that a change to any reruns its jobs."""
    if not CFG.stitch.enabled:
        return []
    return [f"{OUT}/{outdir.input_alias(w.scan, i)}" for i in range(len(CFG.stitch.inputs))]


def plan_path(scan: str) -> str:
    return ScanFiles.under(OUT, scan).plan


def plan_of(w) -> Plan:
    """The scan's plan; using it makes the rule wait for the checkpoint."""
    return Plan.read(checkpoints.plan.get(scan=w.scan).output.plan)


def preproc_chunks(w) -> list[str]:
    return [ScanFiles.under(OUT, w.scan).preproc_chunk(k) for k in range(plan_of(w).k)]


def recon_chunks(w) -> list[str]:
    return [ScanFiles.under(OUT, w.scan).recon_chunk(j) for j in range(plan_of(w).j)]


def runtime_min(stage: str):
    """SLURM time limit from the scan's size: generous per-GB rates, never below 10 minutes."""

    def runtime(w, attempt) -> int:
        p = Path(plan_path(w.scan))
        if not p.exists():
            return 10 * attempt
        plan = Plan.read(p)
        gb = plan.estimates["preprocessed_bytes"] / 1e9
        per_job = gb / (plan.k if stage == "preprocess" else plan.j)
        return int(max(10, math.ceil(per_job * 30)) * attempt)

    return runtime


def placed(rule: str | None = None) -> dict:
    """The rule's partition, GPU, account and QoS (`tomosnake.placement`); None: a rule that does not reconstruct."""
    return placement.slurm_resources(CFG, rule)


# Resources every rule shares; mem_mb is the per-job budget the plan was made for.
BASE_RESOURCES = dict(mem_mb=math.ceil(CFG.memory_mb), **placed())
PREPROCESS_MEM = math.ceil(CFG.budget_mb("preprocess"))
RECON_MEM = math.ceil(CFG.budget_mb("recon"))


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
    inputs = [files.volume, *export_targets(w.scan)]
    if CFG.report:
        inputs.append(files.report)
    return inputs


def final_targets(w=None) -> list[str]:
    targets = []
    for scan in SCANS:
        files = ScanFiles.under(OUT, scan)
        if CFG.cleanup:
            targets.append(files.cleanup_done)
        else:
            targets.append(files.volume)
            if CFG.report:
                targets.append(files.report)
    return targets
