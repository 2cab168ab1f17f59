"""Job of the rule report: write the scan's PDF report, and its previews and volume statistics for
Snakemake's HTML report."""
from pathlib import Path

import h5py

from tomosnake.jobs import Job
from tomosnake.report.html import write_images, write_stats
from tomosnake.report.pdf import read_slices, write_report
from tomosnake.report.previews import Previews
from tomosnake.stages.plan import Plan


def run(job: Job) -> None:
    analysis = getattr(job.input, "analysis", None)  # named inputs only with analysis.enabled
    write_report(Plan.read(job.input.plan), job.cfg, job.input.previews, job.input.volume, job.output.pdf,
                 scan_dir=Path(job.input.plan).parent,
                 analysis=(analysis, job.input.labels) if analysis else None)
    with h5py.File(job.input.volume, "r") as f:
        sl = read_slices(f)
    write_images(Previews.read(job.input.previews), sl.axial, sl.coronal, sl.sagittal, job.output.images)
    write_stats(job.input.volume, job.output.stats)
