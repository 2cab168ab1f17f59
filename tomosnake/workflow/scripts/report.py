"""Snakemake script: write the scan's PDF report."""
from pathlib import Path

from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.report.pdf import write_report

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
write_report(Plan.read(smk.input.plan), cfg, smk.input.previews, smk.input.volume, smk.output.pdf,
             scan_dir=Path(smk.input.plan).parent)
