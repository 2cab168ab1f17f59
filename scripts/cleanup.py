"""Snakemake script: remove intermediates, then mark the scan as cleaned."""
from tomosnake import jobs
from tomosnake.atomic import write_text
from tomosnake.cleanup import intermediates, remove
from tomosnake.plan import Plan

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
files = intermediates(Plan.read(smk.input.plan), smk.params.scan_dir, keep_recon=cfg.output.combine == "virtual")
freed = remove(files)
write_text(smk.output.done, f"removed {len(files)} intermediates, {freed} bytes\n")
