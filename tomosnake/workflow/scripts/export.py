"""Snakemake script: copy the scan's volume to OME-Zarr (rule ome_zarr) or a TIFF stack (rule tiff_stack)."""
import logging

from tomosnake import jobs
from tomosnake.stages.export import write_ome_zarr, write_tiff_stack

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
scan = smk.wildcards.scan
budget = int(max(0.0, cfg.memory_mb - cfg.overhead_mb) * 2**20)  # this job's resources: memory_mb
if smk.rule == "ome_zarr":
    levels = write_ome_zarr(smk.input.volume, smk.output.zarr, scan, budget)
    logging.getLogger("tomosnake").info("OME-Zarr levels (factor, shape): %s", levels)
else:
    n = write_tiff_stack(smk.input.volume, smk.output.tiff, scan, budget)
    logging.getLogger("tomosnake").info("%d TIFF slices", n)
