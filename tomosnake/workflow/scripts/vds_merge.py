"""Snakemake script: join the preprocessed chunks into one virtual DXchange dataset."""
from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.vds_merge import vds_merge

smk = snakemake  # noqa: F821 - injected by Snakemake
jobs.start(smk)
vds_merge(smk.input.chunks, Plan.read(smk.input.plan), smk.output.vds)
