"""Snakemake script: join the preprocessed chunks into one virtual DXchange dataset; save the report's previews."""
from tomosnake import jobs
from tomosnake.plan import Plan
from tomosnake.previews import write_previews
from tomosnake.vds import stack

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
plan = Plan.read(smk.input.plan)
stack(list(smk.input.chunks), smk.output.vds, extra={"exchange/theta": plan.theta_deg})
write_previews(plan, cfg, smk.output.vds, smk.output.previews)
