"""The Snakemake workflow, shipped inside the package as data.

``Snakefile`` (table of contents) · ``rules/`` (one .smk per stage) · ``entries/`` (each rule's job:
unpacks its arguments, calls its stage) · ``config/config.yaml`` (defaults) · ``profiles/`` (local,
SLURM) · ``envs/`` (per-rule conda envs).
"""

from pathlib import Path

WORKFLOW_DIR = Path(__file__).resolve().parent
SNAKEFILE = WORKFLOW_DIR / "Snakefile"
PROFILES = WORKFLOW_DIR / "profiles"
DEFAULT_CONFIG = WORKFLOW_DIR / "config" / "config.yaml"
ENVS = WORKFLOW_DIR / "envs"

# The backends with a conda env of their own (envs/<backend>.yaml); every other job runs in envs/core.yaml.
BACKEND_ENVS = ("tomopy", "tomocupy")


def conda_env(stage: str, backend: str) -> str:
    """The conda env file of a rule's jobs (used with ``--sdm conda``): the backend's for reconstruction
    (``stage`` "recon"), else core. The env holds the dependencies; jobs import the installed `tomosnake`
    (`tomosnake.jobs` appends the submitting interpreter's package folder to the job's sys.path).
    """
    name = backend if stage == "recon" and backend in BACKEND_ENVS else "core"
    return str(ENVS / f"{name}.yaml")
