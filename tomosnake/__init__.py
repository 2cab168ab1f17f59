"""tomosnake: chunked reconstruction of large synchrotron tomography scans with Snakemake."""

__version__ = "0.1.0"  # the one version string (pyproject.toml reads it)
