"""Job of the rules ome_zarr and tiff_stack: copy the scan's volume to OME-Zarr or a TIFF stack."""
import logging

from tomosnake.jobs import Job
from tomosnake.stages.export import write_ome_zarr, write_tiff_stack


def run(job: Job) -> None:
    cfg, scan = job.cfg, job.wildcards.scan
    budget = int(max(0.0, cfg.memory_mb - cfg.overhead_mb) * 2**20)  # this job's resources: memory_mb
    if job.rule == "ome_zarr":
        levels = write_ome_zarr(job.input.volume, job.output.zarr, scan, budget)
        logging.getLogger("tomosnake").info("OME-Zarr levels (factor, shape): %s", levels)
    else:
        n = write_tiff_stack(job.input.volume, job.output.tiff, scan, budget)
        logging.getLogger("tomosnake").info("%d TIFF slices", n)
