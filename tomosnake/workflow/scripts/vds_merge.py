"""Snakemake script: join the preprocessed chunks into one virtual DXchange dataset."""
from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.io.vds import stack

smk = snakemake  # noqa: F821 - injected by Snakemake
jobs.start(smk)
plan = Plan.read(smk.input.plan)
stack(list(smk.input.chunks), smk.output.vds, extra={"exchange/theta": plan.theta_deg})
