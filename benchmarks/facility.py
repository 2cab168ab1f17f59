"""The seed paper's Table 1 scans, modelled on its cluster from reconstruction costs measured here.

    .venv/bin/python benchmarks/facility.py            # 2048, 4096, 8192 px (angles = width / 2)
    .venv/bin/python benchmarks/facility.py --quick    # 1024, 2048 px

1. Measures the default backend's cost per slice and per job (the gridding's points, built once per job)
   with `reconstruct_block` (default chain: -log, edge padding, gridrec) at each width, with 1 and 2
   threads, and the process's peak resident memory of a 2-slice load at the two largest widths against
   the plan's model (`block_overhead_bytes` + 2 x `slice_bytes`).
2. Fits `resources.ReconRates` to the one-thread figures: the grid FFTs' seconds (timed apart by
   `gridrec`) per fine-grid cell x log2, the rest per spectrum point, the points' building per point; the
   2-thread speed-up gives the efficiency applied to every thread of a node.
3. Plans the three scans of seed 000's Table 1 (sparse HDF5 files of their shapes) with 96 threads and a
   64 GB budget and prints `resources.cluster_seconds` on 25 nodes x 96 threads, IO at 10 GB/s, beside
   the paper's times (target: each at most a quarter), and the model's memory per bone slice.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from tomosnake.jobs import return_freed_memory
from tomosnake import resources
from tomosnake.config import ReconConfig, validate
from tomosnake.phantom import write_sparse_scan
from tomosnake.recon import gridrec
from tomosnake.recon.chain import block_overhead_bytes, reconstruct_block, slice_bytes
from tomosnake.report import timings
from tomosnake.report.timings import JobSampler
from tomosnake.stages.plan import make_plan

# seed 000, Table 1: (projections, rows, columns), seconds on 25 nodes x 96 threads
TABLE1 = {"eggshell": ((2258, 2256, 2176), 181.0), "mouse brain": ((24002, 2586, 24609), 3 * 3600 + 15 * 60 + 20.0),
          "ovine bone": ((25134, 2584, 16606), 3600 + 36 * 60 + 48.0)}
NODES, CPUS, IO = 25, 96, 10e9
GB = 1e9


def measure(n: int, angles: int, threads: int, repeat: int) -> dict[str, float]:
    """A 2-slice load: the gridding's points (built in the first run), then the best of ``repeat`` runs with
    them kept, per slice, and its grid FFTs' part (`gridrec`'s phases); the process's peak RSS over its
    start during the first run."""
    rng = np.random.default_rng(0)
    proj = rng.uniform(0.3, 0.9, (angles, 2, n)).astype(np.float32)
    theta = np.linspace(0, 180, angles, endpoint=False)
    cfg = ReconConfig()

    def run() -> tuple[float, dict[str, float]]:
        p0, t0 = timings.phases(), time.perf_counter()
        reconstruct_block(proj, theta, cfg, n / 2 - 0.3, False, threads)
        wall, p1 = time.perf_counter() - t0, timings.phases()
        return wall, {k: v - p0.get(k, 0.0) for k, v in p1.items()}

    gridrec.forget()
    sampler = JobSampler()
    _, first = run()
    sampler.stop()
    wall, parts = min((run() for _ in range(repeat)), key=lambda r: r[0])
    gridrec.forget()
    model = block_overhead_bytes(angles, n, cfg, threads) + 2 * slice_bytes(angles, n, cfg)
    return {"slice": wall / 2, "fft": parts.get("gridding: grid FFTs", 0.0) / 2,
            "build": first.get("gridding: points", 0.0), "rss": sampler.peak_rss - sampler.start_rss, "model": model}


def points(n: int, angles: int) -> tuple[int, float]:
    """(spectrum points of a slice, fine-grid cells x log2 per slice) for the default chain."""
    g = gridrec.fft_length(n + 2 * (n // 4))
    nf = gridrec.fine_grid(n)
    return angles * g, nf * nf * math.log2(nf) / 2


def fit(rows: list[tuple[int, int, dict]]) -> resources.ReconRates:
    """Each rate as the median over the widths of its part's seconds over its count."""
    def median(values: list[float]) -> float:
        return float(np.median(values))

    return resources.ReconRates(
        per_point=median([(r["slice"] - r["fft"]) / points(n, m)[0] for n, m, r in rows]),
        per_cell=median([r["fft"] / points(n, m)[1] for n, m, r in rows]),
        build_per_point=median([r["build"] / points(n, m)[0] for n, m, r in rows]))


def clock(s: float) -> str:
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{s % 60:04.1f}s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="runs per figure, the best kept")
    args = ap.parse_args()
    return_freed_memory()  # the allocator's policy of every job (`resources.JOB_ENV`)
    widths = [1024, 2048] if args.quick else [2048, 4096, 8192]
    rows: dict[int, list] = {1: [], 2: []}
    print(f"{'width x angles':>16} {'threads':>7} {'s/slice':>8} {'s/job (points)':>14} {'peak RSS':>9} {'model':>9}")
    for n in widths:
        for t in (1, 2):
            r = measure(n, n // 2, t, args.repeat)
            rows[t].append((n, n // 2, r))
            print(f"{f'{n} x {n // 2}':>16} {t:>7} {r['slice']:>8.2f} {r['build']:>14.2f} {r['rss'] / GB:>8.2f}G "
                  f"{r['model'] / GB:>8.2f}G")
    rates = fit(rows[1])
    eff = float(np.mean([a[2]["slice"] / (2 * b[2]["slice"]) for a, b in zip(rows[1], rows[2], strict=True)]))
    eff = min(1.0, eff)
    print(f"fit (1 thread): {rates.per_point * 1e9:.1f} ns per spectrum point, {rates.per_cell * 1e9:.2f} ns per "
          f"grid cell x log2, {rates.build_per_point * 1e9:.1f} ns per point per job; 2-thread efficiency {eff:.2f}"
          f" (resources.RECON: {resources.RECON.per_point * 1e9:.1f}, {resources.RECON.per_cell * 1e9:.2f}, "
          f"{resources.RECON.build_per_point * 1e9:.1f})")
    per_thread = resources.ReconRates(rates.per_point / eff, rates.per_cell / eff, rates.build_per_point / eff)
    print(f"\nseed 000, Table 1, modelled on {NODES} nodes x {CPUS} threads, IO {IO / GB:g} GB/s "
          "(memory_mb 64000, threads 96):")
    print(f"{'scan':<12} {'paper':>11} {'modelled':>11} {'ratio':>6}  stages (s)")
    with tempfile.TemporaryDirectory(prefix="tomosnake-facility-") as tmp:
        for name, (shape, paper) in TABLE1.items():
            raw = write_sparse_scan(Path(tmp) / f"{name.replace(' ', '_')}.h5", shape)
            cfg = validate({"memory_mb": 64000, "threads": CPUS, "recon": {"center": shape[2] / 2}})
            plan = make_plan(cfg, str(raw), name, search=False)
            stages = resources.cluster_seconds(plan, cfg, NODES, CPUS, IO, per_thread)
            total = sum(stages.values())
            print(f"{name:<12} {clock(paper):>11} {clock(total):>11} {total / paper:>6.2f}  "
                  + ", ".join(f"{k} {v:.0f}" for k, v in stages.items())
                  + f"  [{plan.k} preprocessing jobs of {resources.job_threads(plan, cfg, 'preprocess_chunk')} "
                    f"threads, {plan.j} recon jobs of {resources.job_threads(plan, cfg, 'recon_chunk')} "
                    f"(plan: {plan.recon_threads}), {plan.slices_per_load} slices a load]")
            raw.unlink()
            if name == "ovine bone":
                fixed = block_overhead_bytes(shape[0], shape[2], cfg.recon, plan.recon_threads)
                per = slice_bytes(shape[0], shape[2], cfg.recon)
                load = plan.slices_per_load
                each = (fixed + load * per) / load / GB
                print(f"{'':<12} memory per bone slice (model, a load of {load}): {each:.1f} GB (target <= 25; "
                      "TomoPy 70 GiB)")
    print("target: each modelled time <= 0.25 of the paper's")


if __name__ == "__main__":
    main()
