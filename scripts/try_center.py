"""Job of the rule try_center_scan: a series of trial centres for one slice, with a contact sheet."""
from pathlib import Path

from tomosnake.jobs import Job
from tomosnake.outdir import scan_input
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import preprocessed_rows, try_center


def run(job: Job) -> None:
    plan = Plan.read(job.input.plan)
    raw = getattr(job.input, "raw", None)  # the rule gives the pre-processed data or, after cleanup, the raw file
    with preprocessed_rows(plan, job.cfg, vds=getattr(job.input, "vds", None),
                           raw=scan_input(job.cfg, job.wildcards.scan) if raw else None) as rows:
        try_center(rows, plan, job.cfg, Path(job.output.sheet).parent)
