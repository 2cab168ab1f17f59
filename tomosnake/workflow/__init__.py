"""The Snakemake workflow, shipped inside the package as data.

``Snakefile`` (table of contents) · ``rules/`` (one .smk per stage) · ``scripts/`` (thin job entry
points) · ``config/config.yaml`` (defaults) · ``profiles/`` (local, SLURM) · ``envs/`` (per-rule conda envs).
"""

from pathlib import Path

WORKFLOW_DIR = Path(__file__).resolve().parent
SNAKEFILE = WORKFLOW_DIR / "Snakefile"
PROFILES = WORKFLOW_DIR / "profiles"
ENVS = WORKFLOW_DIR / "envs"
