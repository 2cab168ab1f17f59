"""Snakemake script: save the raw and corrected images the report shows, before cleanup removes their source."""
from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.report.previews import write_previews

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
write_previews(Plan.read(smk.input.plan), cfg, smk.input.vds, smk.output.previews)
