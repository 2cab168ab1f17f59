"""Job of the rule input_checksum: full SHA-256 of the scan's raw files (``sha256sum -c`` format)."""
from tomosnake.io.atomic import write_text
from tomosnake.io.fingerprint import input_files, sha256_line
from tomosnake.jobs import Job
from tomosnake.outdir import real_input
from tomosnake.report import timings


def run(job: Job) -> None:
    with timings.io_timer():
        cfg = job.cfg
        files = input_files(real_input(job.input.raw), cfg.datasets.flat_file, cfg.datasets.dark_file,
                            [real_input(p) for p in getattr(job.input, "parts", [])])
        lines = [sha256_line(p) for p in files]
    write_text(job.output.sha, "".join(lines))
