"""Snakemake script: preprocess one block of projections."""
from tomosnake import jobs
from tomosnake.stages.plan import Plan
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.io.stitched_scan import open_scan
from tomosnake.outdir import real_input

smk = snakemake  # noqa: F821 - injected by Snakemake
cfg = jobs.start(smk)
k = int(smk.wildcards.k)
plan = Plan.read(smk.input.plan)
p0, p1 = plan.proj_chunks[k]
with open_scan(cfg, real_input(smk.input.raw), plan.stitch_offsets) as scan:
    process_chunk(scan, cfg.preprocess, p0, p1, tuple(plan.tile), smk.output.chunk, threads=cfg.threads,
                  after_tile=jobs.fault(cfg, "preprocess", k))
