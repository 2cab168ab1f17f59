"""Snakemake script: reconstruct one block of sinogram rows."""
import json

from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.recon_chunk import recon_chunk

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
j = int(smk.wildcards.j)
conv_range = json.loads(open(smk.input.range).read())
recon_chunk(smk.input.vds, Plan.read(smk.input.plan), j, cfg, conv_range, smk.output.recon,
            after_load=jobs.fault(cfg, "recon", j))
