"""Job of the rule try_lamino_scan: a series of trial laminography angles for one slice, with a contact sheet."""
from pathlib import Path

from tomosnake.jobs import Job
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import try_lamino


def run(job: Job) -> None:
    try_lamino(job.input.vds, Plan.read(job.input.plan), job.cfg, Path(job.output.sheet).parent)
