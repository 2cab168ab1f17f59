# Config loading and validation, paths, and the input functions that read the plan checkpoint.
import math
from pathlib import Path

from tomosnake import config as tconfig
from tomosnake import outdir, placement, preflight
from tomosnake.config import stage_dict
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
    """The per-rule conda env (used with --sdm conda): the backend's env for reconstruction.

    The env holds the dependencies; jobs import the installed `tomosnake` (`pip install .`): Snakemake's
    script preamble appends the submitting interpreter's sys.path, its site-packages included."""
    if stage == "recon" and CFG.recon.backend in ("tomopy", "tomocupy"):
        return f"../envs/{CFG.recon.backend}.yaml"
    return "../envs/core.yaml"


SCANS = preflight.scans(CFG)
SCAN_DIR = OUT + "/{scan}"


wildcard_constraints:
    scan="[A-Za-z0-9._-]+",
    k=r"\d+",
    j=r"\d+",


def raw_input(w) -> str:
    """The scan's raw file under its safe name (a symlink in the outdir; jobs open the real file)."""
    return f"{OUT}/{outdir.input_alias(w.scan)}"


def stitch_inputs(w) -> list[str]:
    """Every file a stitched scan is joined from (none otherwise), so that a change to any reruns its jobs."""
    return [f"{OUT}/{outdir.input_alias(w.scan, i)}" for i in range(len(CFG.stitch.inputs))] if CFG.stitch.enabled else []


def plan_path(scan: str) -> str:
    return f"{OUT}/{scan}/plan.json"


def plan_of(w) -> Plan:
    """The scan's plan; using it makes the rule wait for the checkpoint."""
    return Plan.read(checkpoints.plan.get(scan=w.scan).output.plan)


def preproc_chunks(w) -> list[str]:
    return [f"{OUT}/{w.scan}/preproc/chunk_{k}.h5" for k in range(plan_of(w).k)]


def recon_chunks(w) -> list[str]:
    return [f"{OUT}/{w.scan}/recon/recon_{j}.h5" for j in range(plan_of(w).j)]


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


def final_targets(w=None) -> list[str]:
    targets = []
    for scan in SCANS:
        if CFG.cleanup:
            targets.append(f"{OUT}/{scan}/cleanup.done")
        else:
            targets.append(f"{OUT}/{scan}/{scan}_recon.h5")
            if CFG.report:
                targets.append(f"{OUT}/{scan}/{scan}_report.pdf")
    return targets
