"""Throughput and peak memory of the pre-processing chain on a generated stack.

    .venv/bin/python benchmarks/preprocess.py            # 500 x 512 x 2048 uint16 (1 GiB raw)
    .venv/bin/python benchmarks/preprocess.py --quick    # 40 x 64 x 256, seconds
    .venv/bin/python benchmarks/preprocess.py --stripe   # add stripe removal (all projections per tile)

The raw stack is written once with a fast generator (a shifted smooth object,
Poisson-like noise from a small table, a top-up saw-tooth beam monitor), then
every chunk is processed in a fresh child process, as a job would be, and its
peak RSS compared with the memory budget.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import psutil

MB = 1 << 20


def generate(path: Path, n_proj: int, n_rows: int, n_cols: int, seed: int = 0) -> None:
    """A DXchange file of a rotating smooth object, written one projection at a time."""
    rng = np.random.default_rng(seed)
    r = np.linspace(-1, 1, n_rows)[:, None]
    c = np.linspace(-1.5, 1.5, 2 * n_cols)[None, :]
    obj = 1.2 * np.exp(-(c**2 / 0.3 + r**2 / 2)) + 0.4 * np.exp(-((c - 0.3) ** 2 + r**2) / 0.01)
    beam = 20000.0 * (1 - 0.2 * np.linspace(-1, 1, n_cols) ** 2)[None, :] * np.ones((n_rows, 1))
    noise = [rng.normal(1, 0.007, (n_rows, n_cols)).astype(np.float32) for _ in range(4)]
    i0 = 1 - 0.1 * ((np.arange(n_proj) % 50) / 50)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("exchange/data", (n_proj, n_rows, n_cols), np.uint16, chunks=(1, n_rows, n_cols))
        for k in range(n_proj):
            start = n_cols // 2 + int(n_cols / 2 * np.sin(2 * np.pi * k / n_proj))  # the object moves sideways
            att = obj[:, start:start + n_cols]
            counts = beam * i0[k] * np.exp(-att) * noise[k % 4] + 100
            counts[k % n_rows, (k * 7) % n_cols] = 60000  # a zinger
            data[k] = counts.astype(np.uint16)
        f["exchange/data_white"] = np.stack([beam * n + 100 for n in noise[:2]] * 5).astype(np.uint16)
        f["exchange/data_dark"] = np.full((10, n_rows, n_cols), 100, np.uint16)
        f["exchange/theta"] = np.linspace(0, 180, n_proj, endpoint=False)
        f["instrument/beam_monitor/data"] = i0 * 1000


def config(stripe: bool):
    from tomosnake.config import PreprocessConfig

    sections = {"i0": {"enabled": True}, "outlier": {"enabled": True, "dif": 0.2}, "minus_log_before_phase": True,
                "phase": {"enabled": True}}
    if stripe:
        sections["stripe"] = {"enabled": True}
    return PreprocessConfig.model_validate(sections)


def job(path: str, out: str, p0: int, p1: int, budget: int, stripe: bool, threads: int, queue: mp.Queue) -> None:
    """One chunk job: plan the tile for the budget, process, report time and peak RSS."""
    from tomosnake.stages.preprocess_chunk import build_chain, process_chunk, subchunk_shape
    from tomosnake.io.scan import RawScan

    cfg = config(stripe)
    try:
        with RawScan(path) as scan:
            info = scan.info
            chain = build_chain(cfg, has_i0=info.has_i0)
            tile = subchunk_shape(chain, budget, info.n_proj, info.n_rows, info.n_cols, threads)
            base = psutil.Process().memory_info().rss
            t0 = time.perf_counter()
            process_chunk(scan, cfg, p0, p1, tile, out, threads=threads)
            seconds = time.perf_counter() - t0
    except Exception as err:
        queue.put({"error": f"{type(err).__name__}: {err}"})
        raise
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"tile": tile, "steps": chain.names, "needs": str(chain.needs), "seconds": seconds,
               "base": base, "peak": peak})


def step_times(path: str, stripe: bool, threads: int, n: int) -> dict[str, float]:
    """Seconds per step for the whole stack, timed on ``n`` projections x all rows (all projections x ``n``
    rows when stripes need every projection) and scaled by the pixel count."""
    from tomosnake.corrections import FULL, Context
    from tomosnake.stages.preprocess_chunk import build_chain
    from tomosnake.io.scan import RawScan

    with RawScan(path) as scan:
        info = scan.info
        chain = build_chain(config(stripe), has_i0=info.has_i0)
        n_p, n_r = (info.n_proj, min(n, info.n_rows)) if chain.needs.proj is FULL else (n, info.n_rows)
        t0 = time.perf_counter()
        block = scan.projections(0, n_p, 0, n_r)
        times = {"read": time.perf_counter() - t0}
        ctx = Context(proj=(0, n_p), rows=(0, n_r), image=(n_r, info.n_cols), raw_rows=(0, n_r), source=scan,
                      threads=threads)
        for step in chain.steps:
            t0 = time.perf_counter()
            block = step.apply(block, ctx)
            times[step.name] = time.perf_counter() - t0
    scale = info.n_proj * info.n_rows / (n_p * n_r)
    return {k: v * scale for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 x 64 x 256")
    ap.add_argument("--shape", type=int, nargs=3, default=(500, 512, 2048), metavar=("PROJ", "ROWS", "COLS"))
    ap.add_argument("--budget-mb", type=float, default=1500.0, help="memory budget per job (data, MB)")
    ap.add_argument("--chunks", type=int, default=2, help="jobs (blocks of projections)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stripe", action="store_true", help="add stripe removal (remove_all_stripe)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()
    shape = (40, 64, 256) if args.quick else tuple(args.shape)
    budget = int((64.0 if args.quick else args.budget_mb) * MB)
    work = args.dir or Path(tempfile.mkdtemp(prefix="tomosnake-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        raw = work / "raw.h5"
        t0 = time.perf_counter()
        generate(raw, *shape)
        print(f"generated {shape[0]} x {shape[1]} x {shape[2]} uint16 ({raw.stat().st_size / MB:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        ctx = mp.get_context("spawn")
        edges = np.linspace(0, shape[0], args.chunks + 1).round().astype(int)
        total, results = 0.0, []
        for i, (p0, p1) in enumerate(itertools.pairwise(edges)):
            queue = ctx.Queue()
            proc = ctx.Process(target=job, args=(str(raw), str(work / f"chunk_{i}.h5"), int(p0), int(p1), budget,
                                                 args.stripe, args.threads, queue))
            proc.start()
            res = queue.get()
            proc.join()
            if "error" in res:
                raise SystemExit(f"job {i} failed: {res['error']}")
            results.append(res)
            total += res["seconds"]
            print(f"job {i}: projections {p0}:{p1} tile {res['tile']} {res['seconds']:.1f} s, "
                  f"peak RSS {res['peak'] / MB:.0f} MB (after imports {res['base'] / MB:.0f} MB; "
                  f"data {(res['peak'] - res['base']) / MB:.0f} MB vs budget {budget / MB:.0f} MB)")
        raw_mb = np.prod(shape) * 2 / MB
        print(f"chain: {' -> '.join(results[0]['steps'])}; overlap {results[0]['needs']}; threads {args.threads}")
        print(f"throughput: {shape[0] / total:.1f} projections/s, {raw_mb / total:.1f} MB/s of raw uint16 "
              f"({2 * raw_mb / total:.1f} MB/s float32 out), {total:.1f} s for {raw_mb:.0f} MB")
        worst = max(r["peak"] - r["base"] for r in results)
        print(f"memory: worst job data peak {worst / MB:.0f} MB of {budget / MB:.0f} MB budget "
              f"({'within' if worst <= budget else 'OVER'} budget)")
        per_step = step_times(str(raw), args.stripe, args.threads, min(shape[0], 32))
        print("seconds per step for the whole stack (from one tile): "
              + ", ".join(f"{k} {v:.1f}" for k, v in per_step.items()))
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
