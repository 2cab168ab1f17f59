"""Job of the rule labels_ome_zarr: the analysis's phase labels as an OME-Zarr image."""
from tomosnake.jobs import Job
from tomosnake.stages.export import write_ome_zarr


def run(job: Job) -> None:
    budget = int(max(0.0, job.cfg.memory_mb - job.cfg.overhead_mb) * 2**20)  # this job's resources: memory_mb
    write_ome_zarr(job.input.labels, job.output.zarr, f"{job.wildcards.scan} labels", budget)
