"""Job of the rule plan (a checkpoint): plan one scan."""
from tomosnake.jobs import Job
from tomosnake.outdir import scan_input
from tomosnake.stages import plan


def run(job: Job) -> None:
    plan.write_plan(job.cfg, scan_input(job.cfg, job.wildcards.scan), job.wildcards.scan, job.output.plan)
