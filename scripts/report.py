"""Job of the rule report: write the scan's PDF report."""
from pathlib import Path

from tomosnake.jobs import Job
from tomosnake.report.pdf import write_report
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    analysis = getattr(job.input, "analysis", None)  # named inputs only with analysis.enabled
    write_report(Plan.read(job.input.plan), job.cfg, job.input.previews, job.input.volume, job.output.pdf,
                 scan_dir=Path(job.input.plan).parent,
                 analysis=(analysis, job.input.labels) if analysis else None)
