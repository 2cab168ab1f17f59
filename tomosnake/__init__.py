"""tomosnake: chunked reconstruction of large synchrotron tomography scans with Snakemake.

Every job is a fresh Python process, so what a module imports at its top is paid by every job that
imports it. scipy's ndimage and fft and finufft (about 0.35 s together) are therefore imported inside
the functions that filter or reconstruct (marked ``# lazy``): the plan, vds_merge, combine, report and
cleanup jobs, which import the plan's module and through it the corrections, never load them.
"""

__version__ = "0.1.0"  # the one version string (pyproject.toml reads it)
