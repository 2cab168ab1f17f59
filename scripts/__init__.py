"""Each rule's job: ``run(job)`` unpacks its files and wildcards and calls its stage (`tomosnake.stages`).

One module per rule (export serves ome_zarr and tiff_stack); `tomosnake.jobs.run_job` loads the
module (`tomosnake.workflow.script`) when the job runs, so that a process imports only what its jobs need.
"""
