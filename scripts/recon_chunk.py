"""Job of the rule recon_chunk: reconstruct one block of sinogram rows."""
import json
from pathlib import Path

from tomosnake import jobs
from tomosnake.jobs import Job
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import recon_chunk


def run(job: Job) -> None:
    j = int(job.wildcards.j)
    conv_range = json.loads(Path(job.input.range).read_text())
    recon_chunk(job.input.vds, Plan.read(job.input.plan), j, job.cfg_on_its_threads(), conv_range, job.output.recon,
                after_load=jobs.fault(job.cfg, "recon", j))
