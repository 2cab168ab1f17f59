"""Job of the rule conversion_range: fix the bit-depth conversion range once for the whole volume."""
from tomosnake.jobs import Job
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    write_range(job.input.vds, Plan.read(job.input.plan), job.cfg_on_its_threads(), job.output.range)
