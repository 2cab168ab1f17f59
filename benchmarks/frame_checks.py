"""Cost of checking every frame a pre-processing job reads (issue 27), against the read itself.

    .venv/bin/python benchmarks/frame_checks.py                 # 32 frames of 1024 x 2048 per dtype
    .venv/bin/python benchmarks/frame_checks.py --frames 64 --rows 2048 --cols 2048

For uint16, int32 and float32 frames (a frame-chunked HDF5 file as beamlines write it, in the page
cache: the fastest a read gets, so the ratio is an upper bound), prints the time of
`RawScan.projections` with its checks (`check_frames`: non-finite values and negative counts, and the
per-frame all-zero flag), of the checks alone on the block in memory, and their ratio (best of
``--repeat``). The flats' check against the darks is one comparison per pixel of each flat batch
`reduce_frames` already holds; it is timed beside the reduction it rides on.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from tomosnake.corrections.flatdark import flats_above, reduce_frames
from tomosnake.io.scan import RawScan, check_frames


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write(path: Path, dtype: str, frames: int, rows: int, cols: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("exchange/data", (frames, rows, cols), dtype=dtype, chunks=(1, rows, cols))
        for i in range(frames):
            data[i] = rng.uniform(100, 4000, (rows, cols)).astype(dtype)
        f["exchange/data_white"] = rng.uniform(5000, 6000, (20, rows, cols)).astype(dtype)
        f["exchange/data_dark"] = rng.uniform(90, 110, (10, rows, cols)).astype(dtype)
        f["exchange/theta"] = np.linspace(0, 180, frames, endpoint=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"{a.frames} frames of {a.rows} x {a.cols}; best of {a.repeat}")
    print(f"{'dtype':<8}{'read+checks s':>14}{'checks s':>10}{'checks/read':>12}{'flats reduce s':>15}"
          f"{'+check s':>9}{'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("uint16", "int32", "float32"):
            path = Path(tmp) / f"{dtype}.h5"
            write(path, dtype, a.frames, a.rows, a.cols)
            with RawScan(path) as scan:
                read = best(lambda scan=scan: scan.projections(0, a.frames, 0, a.rows), a.repeat)
                block = scan._data[:]  # the raw block a read holds before its float32 copy
                frames = range(a.frames)

                def checks(block=block, frames=frames, scan=scan):
                    check_frames(block, frames, scan._data, "projections")
                    block.reshape(len(block), -1).any(axis=1)

                alone = best(checks, a.repeat)
                dark = reduce_frames(scan.darks, 0, a.rows, "mean")
                plain = best(lambda scan=scan: reduce_frames(scan.flats, 0, a.rows, "mean"), a.repeat)
                checked = best(lambda scan=scan, dark=dark: reduce_frames(
                    scan.flats, 0, a.rows, "mean", flats_above("flats", dark, 0)), a.repeat)
            print(f"{dtype:<8}{read:>14.3f}{alone:>10.3f}{alone / read:>12.2f}{plain:>15.3f}{checked:>9.3f}"
                  f"{checked / plain:>7.2f}")


if __name__ == "__main__":
    main()
