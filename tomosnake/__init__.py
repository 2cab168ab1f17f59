"""tomosnake: chunked reconstruction of large synchrotron tomography scans with Snakemake.

What a module imports at its top is paid by every process that imports it: the run's Snakemake
process, which parses the workflow and plans on the submit host, and under SLURM each job's own
Snakemake, which runs the job (`tomosnake.jobs`). scipy's ndimage and finufft (about 0.2 s together)
are therefore imported inside the functions that filter or reconstruct (marked ``# lazy``), as is
scipy.fft (0.25 s): a process that only plans, merges, combines, reports or cleans up never loads
the first two, and loads scipy.fft only for the FFT lengths of the memory model.
"""

__version__ = "0.1.0"  # the one version string (pyproject.toml reads it)
