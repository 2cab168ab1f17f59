"""Snakemake script: a series of trial laminography angles for one slice, with a contact sheet."""
from pathlib import Path

from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import try_lamino

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
try_lamino(smk.input.vds, Plan.read(smk.input.plan), cfg, Path(smk.output.sheet).parent)
