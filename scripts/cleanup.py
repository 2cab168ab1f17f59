"""Job of the rule cleanup: remove intermediates, then mark the scan as cleaned."""
import logging
from pathlib import Path

from tomosnake.guard import input_paths
from tomosnake.io.atomic import write_text
from tomosnake.jobs import Job
from tomosnake.stages.cleanup import clean
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    summary = clean(Plan.read(job.input.plan), Path(job.input.plan).parent,
                    keep_recon=job.cfg.output.combine == "virtual", workdir=Path.cwd(),
                    inputs=input_paths(job.cfg))
    logging.getLogger("tomosnake").info(summary.strip())
    write_text(job.output.done, summary)
