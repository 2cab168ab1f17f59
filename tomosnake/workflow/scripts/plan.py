"""Snakemake script: plan one scan (checkpoint)."""
from tomosnake import jobs
from tomosnake.stages import plan
from tomosnake.outdir import real_input

cfg = jobs.start(snakemake)  # noqa: F821 - injected by Snakemake
plan.write_plan(cfg, real_input(snakemake.input.raw), snakemake.wildcards.scan, snakemake.output.plan)  # noqa: F821
