"""Snakemake script: fix the bit-depth conversion range once for the whole volume."""
from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.conversion_range import write_range

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
write_range(smk.input.vds, Plan.read(smk.input.plan), cfg, smk.output.range)
