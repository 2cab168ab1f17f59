"""Snakemake script: plan one scan (checkpoint)."""
from tomosnake import jobs
from tomosnake.stages import plan

cfg = jobs.start(snakemake)  # noqa: F821 - injected by Snakemake
plan.write_plan(cfg, snakemake.input.raw, snakemake.wildcards.scan, snakemake.output.plan)  # noqa: F821
