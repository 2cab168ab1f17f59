"""Job of the rule analyze_chunk: the phases and objects of one job's slabs of the volume."""
from tomosnake.analysis.layout import of_plan
from tomosnake.jobs import Job
from tomosnake.stages.analyze_chunk import analyze_chunk
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    lay = of_plan(Plan.read(job.input.plan), job.cfg)
    analyze_chunk(job.input.volume, lay, int(job.wildcards.j), job.cfg, job.output.chunk, job.threads)
