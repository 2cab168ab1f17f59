"""recon_chunk with 1 and 2 threads on issue 22's wide scan: speed-up and bit-equality.

    .venv/bin/python benchmarks/recon_threads.py [--repeat 5] [--cols 4096]

The scan: 1500 angles x 4 rows x 4096 px (phantom), ``memory_mb`` 15 % above the smallest the plan accepts,
so every load holds one slice (before issue 22 that budget held one single-threaded gridding worker:
4.84 s with 2 threads against 4.63 s with 1). Each run is a whole recon_chunk job of the plan (the
gridding points built once per job, as in a real job); the best of ``--repeat`` runs per thread count,
alternating, with the job's own CPU seconds (`tomosnake.report.timings.job_cpu`). Target: >= 1.6x.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tomosnake.jobs import return_freed_memory
from tomosnake import config as tconfig
from tomosnake.io.scan import RawScan
from tomosnake.io.vds import stack
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.recon import gridrec
from tomosnake.report.timings import JobCPU
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.plan import make_plan, smallest_memory_mb
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.stages.recon_chunk import recon_chunk

MARGIN = 1.15


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cols", type=int, default=4096)
    args = ap.parse_args()
    return_freed_memory()  # the allocator's policy of every job (`resources.JOB_ENV`)
    spec = PhantomSpec(n_proj=1500, n_rows=4, n_cols=args.cols, center_offset=2.5, seed=3)
    with tempfile.TemporaryDirectory(prefix="tomosnake-threads-") as tmp:
        d = Path(tmp)
        raw = write_scan(d / "raw.h5", spec)

        def cfg(threads: int, memory_mb: float | None = None) -> tconfig.TomoConfig:
            extra = {} if memory_mb is None else {"memory_mb": memory_mb}
            return tconfig.validate({"input": [str(raw)], "threads": threads, "recon": {"center": spec.center}}
                                    | extra)

        memory = MARGIN * smallest_memory_mb(cfg(2), str(raw), "wide")
        plans = {t: make_plan(cfg(t, memory), str(raw), "wide", search=False) for t in (1, 2)}
        p = plans[2]
        with RawScan(raw, cfg(2).datasets) as scan:
            process_chunk(scan, cfg(2).preprocess, 0, p.shape[0], p.tile, d / "chunk_0.h5", threads=2)
        vds = d / "preproc.vds.h5"
        stack([d / "chunk_0.h5"], vds, extra={"exchange/theta": p.theta_deg})
        conv = write_range(vds, p, cfg(2, memory), d / "range.json")
        print(f"scan {spec.n_proj} x {spec.n_rows} x {spec.n_cols}, memory_mb {memory:.0f} (smallest "
              f"{memory / MARGIN:.0f} + 15 %): {p.j} job(s), {p.slices_per_load} slice(s) a load, plan threads "
              f"{plans[1].recon_threads} and {plans[2].recon_threads}")
        best: dict[int, tuple[float, float]] = {}
        volumes: dict[int, np.ndarray] = {}
        for _ in range(args.repeat):
            for t in (1, 2):
                gridrec.forget()
                out = d / f"recon_{t}.h5"
                for j in range(plans[t].j):  # as Snakemake does before a job: replacing them costs their unlink
                    out.with_suffix(f".{j}.h5").unlink(missing_ok=True)
                cpu = JobCPU()
                t0 = time.perf_counter()
                for j in range(plans[t].j):
                    recon_chunk(vds, plans[t], j, cfg(t, memory), conv, out.with_suffix(f".{j}.h5"))
                wall, cpu_s = time.perf_counter() - t0, cpu.seconds()
                if t not in best or wall < best[t][0]:
                    best[t] = (wall, cpu_s)
                volumes[t] = np.concatenate([h5py.File(out.with_suffix(f".{j}.h5"), "r")["exchange/data"][...]
                                             for j in range(plans[t].j)])
        for t, (wall, cpu_s) in sorted(best.items()):
            print(f"threads {t}: {wall:.2f} s wall, {cpu_s:.2f} s CPU ({cpu_s / wall:.2f} cores busy)")
        print(f"speed-up 2 vs 1 threads: {best[1][0] / best[2][0]:.2f}x (target >= 1.6x); "
              f"volumes equal bit for bit: {np.array_equal(volumes[1], volumes[2])}")


if __name__ == "__main__":
    main()
