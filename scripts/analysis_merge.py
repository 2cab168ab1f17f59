"""Job of the rule analysis_merge: the slabs joined into the labels file, the JSON and the CSV."""
from tomosnake.analysis.layout import of_plan
from tomosnake.jobs import Job
from tomosnake.stages.analysis_merge import analysis_merge
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    lay = of_plan(Plan.read(job.input.plan), job.cfg)
    analysis_merge(list(job.input.chunks), job.input.volume, lay, job.cfg, job.output.labels, job.output.json,
                   job.output.csv, job.wildcards.scan)
