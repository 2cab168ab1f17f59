"""Job of the rule vds_merge: join the preprocessed chunks into one virtual DXchange dataset; save the
report's previews."""
from tomosnake.jobs import Job
from tomosnake.report.previews import write_previews
from tomosnake.stages.plan import Plan
from tomosnake.stages.vds_merge import vds_merge


def run(job: Job) -> None:
    plan = Plan.read(job.input.plan)
    vds_merge(job.input.chunks, plan, job.output.vds)
    write_previews(plan, job.cfg, job.output.vds, job.output.previews)
