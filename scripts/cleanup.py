"""Snakemake script: remove intermediates, then mark the scan as cleaned."""
from tomosnake import jobs
from tomosnake.atomic import write_text
from tomosnake.cleanup import remove

smk = snakemake  # noqa: F821 - injected by Snakemake
jobs.start(smk)
freed = remove(smk.params.intermediates)
write_text(smk.output.done, f"removed {len(smk.params.intermediates)} intermediates, {freed} bytes\n")
