"""Job of the rule input_checksum: full SHA-256 of the scan's raw files (``sha256sum -c`` format)."""
from tomosnake.io.atomic import write_text
from tomosnake.io.fingerprint import input_files, sha256_line
from tomosnake.jobs import Job
from tomosnake.outdir import scan_input
from tomosnake.report import timings


def run(job: Job) -> None:
    with timings.io_timer():
        cfg = job.cfg
        parts = cfg.stitch.inputs if cfg.stitch.enabled else []
        files = input_files(scan_input(cfg, job.wildcards.scan), cfg.datasets.flat_file, cfg.datasets.dark_file,
                            parts)
        lines = [sha256_line(p) for p in files]
    write_text(job.output.sha, "".join(lines))
