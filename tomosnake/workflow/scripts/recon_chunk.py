"""Snakemake script: reconstruct one block of sinogram rows."""
from tomosnake import jobs
from tomosnake.stages.conversion_range import read_range
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import recon_chunk

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
j = int(smk.wildcards.j)
conv_range = read_range(cfg, getattr(smk.input, "range", None))  # named input only when a job samples it
recon_chunk(smk.input.vds, Plan.read(smk.input.plan), j, cfg, conv_range, smk.output.recon,
            after_load=jobs.fault(cfg, "recon", j))
