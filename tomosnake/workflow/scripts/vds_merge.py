"""Snakemake script: join the preprocessed chunks into one virtual DXchange dataset; save the report's previews."""
from tomosnake import jobs
from tomosnake.report.previews import write_previews
from tomosnake.stages.plan import Plan
from tomosnake.stages.vds_merge import vds_merge

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
plan = Plan.read(smk.input.plan)
vds_merge(smk.input.chunks, plan, smk.output.vds)
write_previews(plan, cfg, smk.output.vds, smk.output.previews)
