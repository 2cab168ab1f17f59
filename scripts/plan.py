"""Job of the rule plan (a checkpoint): plan one scan."""
from tomosnake.jobs import Job
from tomosnake.outdir import real_input
from tomosnake.stages import plan


def run(job: Job) -> None:
    plan.write_plan(job.cfg, real_input(job.input.raw), job.wildcards.scan, job.output.plan)
