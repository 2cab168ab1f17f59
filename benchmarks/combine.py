"""Throughput and peak memory of combine (with and without a pyramid), the OME-Zarr and TIFF copies,
orthogonal reads of the result against the reconstruction chunks, and the input fingerprint.

    .venv/bin/python benchmarks/combine.py            # 256 x 1024 x 1024 float32 (1 GiB), 8 recon chunks
    .venv/bin/python benchmarks/combine.py --quick    # 64 x 256 x 256, seconds

Each step runs in a fresh child process, as a job would, and reports its wall time, MB/s of
volume and peak RSS against the memory budget. Times include the page cache's help (files of
this size stay cached on a 24 GB machine): they are upper bounds on a parallel file system.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from tomosnake import config as tconfig
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import Plan, split

MB = 1 << 20


def _child(fn: Callable[[], object], queue: mp.Queue) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    queue.put((time.perf_counter() - t0, time.process_time() - c0,
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(fn: Callable[[], object]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of ``fn`` in a fresh process (CPU time is the figure to
    compare on a shared, loaded machine)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def report(label: str, vol_mb: float, wall: float, cpu: float, rss: float) -> None:
    print(f"{label:34s} wall {wall:6.2f} s  CPU {cpu:6.2f} s ({vol_mb / cpu:5.0f} MB/CPU-s)  peak RSS {rss:5.0f} MB")


def make_chunks(d: Path, shape: tuple[int, int, int], j: int) -> tuple[list[Path], Plan]:
    """Reconstruction chunk files as recon_chunk writes them (one slice per HDF5 chunk)."""
    raw = write_scan(d / "raw.h5", PhantomSpec(n_proj=20, n_rows=4, n_cols=32))
    from dataclasses import asdict

    from tomosnake.io.scan import RawScan

    with RawScan(raw) as scan:
        info = asdict(scan.info)
    plan = Plan(scan="bench", input=str(raw), info=info, crop=(0, shape[0], 0, shape[1]), proj_chunks=[(0, 20)],
                tile=(20, 4), sino_chunks=split(shape[0], j), slices_per_load=8, recon_width=shape[1],
                center=shape[1] / 2, center_method="config", log_applied=False, memory_mb=2000)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    disc = ((yy - shape[1] / 2) ** 2 + (xx - shape[2] / 2) ** 2 < (0.4 * shape[1]) ** 2).astype(np.float32)
    paths = []
    for k, (r0, r1) in enumerate(plan.sino_chunks):
        p = d / f"recon_{k}.h5"
        with h5py.File(p, "w") as f:
            ds = f.create_dataset("exchange/data", shape=(r1 - r0, *shape[1:]), dtype=np.float32,
                                  chunks=(1, *shape[1:]))
            for i in range(r1 - r0):
                ds[i] = disc * 0.02 + rng.normal(0, 0.002, shape[1:]).astype(np.float32)
        paths.append(p)
    return paths, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-mb", type=float, default=2000.0)
    args = parser.parse_args()
    shape = (64, 256, 256) if args.quick else (256, 1024, 1024)
    vol_mb = np.prod(shape) * 4 / MB
    d = Path(tempfile.mkdtemp(prefix="combine-bench-"))
    try:
        paths, plan = make_chunks(d, shape, 8)
        print(f"volume {shape} float32, {vol_mb:.0f} MB in {len(paths)} recon chunks; budget {args.memory_mb:g} MB")
        from tomosnake.stages.combine import combine
        from tomosnake.stages.export import write_ome_zarr, write_tiff_stack
        from tomosnake.io.fingerprint import fingerprint, sha256_file

        rng_conv = {"enabled": False, "dtype": "float32"}
        runs = [("combine physical, no pyramid", {}), ("combine physical, pyramid 2,4,8", {"pyramid": [2, 4, 8]}),
                ("combine virtual, pyramid 2,4,8", {"combine": "virtual", "pyramid": [2, 4, 8]})]
        for label, output in runs:
            cfg = tconfig.validate({"memory_mb": args.memory_mb, "overhead_mb": 300, "output": output})
            out = d / ("v.h5" if output.get("combine") == "virtual" else "p.h5")
            report(label, vol_mb, *measure(lambda cfg=cfg, out=out: combine(paths, plan, cfg, rng_conv, out)))
        report("OME-Zarr copy (4 levels)", vol_mb, *measure(lambda: write_ome_zarr(d / "p.h5", d / "p.ome.zarr", "b")))
        report("TIFF stack", vol_mb, *measure(lambda: write_tiff_stack(d / "p.h5", d / "tiff", "bench")))

        def ortho(path: Path, level: str = "exchange/data") -> float:
            with h5py.File(path, "r") as f:
                ds = f[level]
                t0 = time.perf_counter()
                ds[:, ds.shape[1] // 2, :]
                ds[:, :, ds.shape[2] // 2]
                return time.perf_counter() - t0

        for label, path, level in [("recon chunks through the VDS", d / "v.h5", "exchange/data"),
                                   ("combined volume (chunked)", d / "p.h5", "exchange/data"),
                                   ("pyramid level 4", d / "p.h5", "exchange/pyramid/4")]:
            print(f"y and x slices from {label:30s} {ortho(path, level):6.3f} s")
        for p in (paths[0], d / "p.h5"):
            size = p.stat().st_size / MB
            t0 = time.perf_counter()
            fingerprint(p)
            tf = time.perf_counter() - t0
            t0 = time.perf_counter()
            sha256_file(p)
            ts = time.perf_counter() - t0
            print(f"{size:7.0f} MB file: fingerprint {tf * 1000:6.1f} ms, full sha256 {ts:6.2f} s "
                  f"({size / ts:.0f} MB/s)")
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
