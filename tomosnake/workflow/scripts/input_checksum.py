"""Snakemake script: full SHA-256 of the scan's raw files (``sha256sum -c`` format)."""
from tomosnake import jobs
from tomosnake.report import timings
from tomosnake.io.atomic import write_text
from tomosnake.io.fingerprint import input_files, sha256_line
from tomosnake.outdir import real_input

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
with timings.io_timer():
    lines = [sha256_line(p) for p in input_files(real_input(smk.input.raw), cfg.datasets.flat_file, cfg.datasets.dark_file)]
write_text(smk.output.sha, "".join(lines))
