"""Job of the rule try_center_scan: a series of trial centres for one slice, with a contact sheet."""
from pathlib import Path

from tomosnake.jobs import Job
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import try_center


def run(job: Job) -> None:
    try_center(job.input.vds, Plan.read(job.input.plan), job.cfg, Path(job.output.sheet).parent)
