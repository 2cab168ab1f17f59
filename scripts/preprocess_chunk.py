"""Job of the rule preprocess_chunk: preprocess one block of projections."""
from tomosnake import jobs
from tomosnake.io.stitched_scan import open_scan
from tomosnake.jobs import Job
from tomosnake.outdir import scan_input
from tomosnake.stages.plan import Plan
from tomosnake.stages.preprocess_chunk import process_chunk


def run(job: Job) -> None:
    cfg, k = job.cfg, int(job.wildcards.k)
    plan = Plan.read(job.input.plan)
    p0, p1 = plan.proj_chunks[k]
    tile_proj, tile_rows = plan.tile
    with open_scan(cfg, scan_input(cfg, job.wildcards.scan), plan.stitch_offsets) as scan:
        process_chunk(scan, cfg.preprocess, p0, p1, (tile_proj, tile_rows), job.output.chunk, threads=job.threads,
                      after_tile=jobs.fault(cfg, "preprocess", k))
