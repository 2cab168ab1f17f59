"""Snakemake script: a series of trial centres for one slice, with a contact sheet."""
from pathlib import Path

from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import try_center

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
try_center(smk.input.vds, Plan.read(smk.input.plan), cfg, Path(smk.output.sheet).parent)
