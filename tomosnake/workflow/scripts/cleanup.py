"""Snakemake script: remove intermediates, then mark the scan as cleaned."""
import logging
from pathlib import Path

from tomosnake import jobs
from tomosnake.io.atomic import write_text
from tomosnake.stages.cleanup import clean
from tomosnake.stages.plan import Plan

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
summary = clean(Plan.read(smk.input.plan), smk.params.scan_dir, keep_recon=cfg.output.combine == "virtual",
                workdir=Path.cwd())
logging.getLogger("tomosnake").info(summary.strip())
write_text(smk.output.done, summary)
