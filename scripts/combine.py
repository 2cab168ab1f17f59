"""Snakemake script: join the reconstructed blocks into one volume."""
import json

from tomosnake import jobs
from tomosnake.combine import combine
from tomosnake.plan import Plan

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
conv_range = json.loads(open(smk.input.range).read())
combine(list(smk.input.recon), Plan.read(smk.input.plan), cfg, conv_range, smk.output.volume)
