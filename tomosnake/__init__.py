"""tomosnake: chunked reconstruction of large synchrotron tomography scans with Snakemake."""

__version__ = "0.1.0"
