"""Cost of the plan on the submit host (the automatic centre is all of it that reads projections).

    .venv/bin/python benchmarks/plan.py                          # all scans below, kept in bench-plan/
    .venv/bin/python benchmarks/plan.py --scans small bone180    # some of them
    PYTHONPATH=/work/main .venv/bin/python benchmarks/plan.py --tomosnake /work/main   # another checkout

Scans (noisy phantoms, uint16, flats and darks, frame-chunked HDF5 as beamlines write them):

* ``small``: issue 15's scan, 720 x 64 x 1024, 180 degrees, axis 5.5 px off centre, written in full.
* ``small360``: the same over 360 degrees.
* ``large``: 1500 x 256 x 2048, 180 degrees, axis 7.3 px off centre.
* ``bone180``, ``bone360``: the seed paper's ovine-bone shape, 25134 x 2584 x 16606 (2.16 TB declared),
  axis 23.3 px off centre.

``large`` and ``bone*`` are sparse files: they declare the whole shape, but only the frames the plan
reads (and the flats and darks it samples) are written; unwritten frames read as a constant fill
value without any I/O. Of a written frame, the band of rows the centre search uses holds the phantom;
the other rows hold the flat's counts. So these files measure this checkout's plan exactly, but
understate the reads of a plan that reads other frames (e.g. an older checkout: its figures on
sparse files are lower bounds, its centres meaningless).

Each plan runs in a fresh Python process with the file's pages dropped from the page cache first
(``posix_fadvise(DONTNEED)``, this file only), with ``threads: 96`` as in a facility config and a
500 GB budget. Printed: import time, plan time (wall, and CPU time: less sensitive to a loaded
machine), the process's peak RSS (kernel high-water mark), the peak RSS of its process tree (sampled
every 20 ms: workers included), bytes the plan process read through system calls (``rchar``, imports
included), and the centre's error against the phantom's axis.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil

from tomosnake.phantom import PhantomSpec, sinogram_block, write_scan

SCANS = {
    "small": (PhantomSpec(n_proj=720, n_rows=64, n_cols=1024, center_offset=5.5, seed=15), False),
    "small360": (PhantomSpec(n_proj=720, n_rows=64, n_cols=1024, center_offset=5.5, theta_end=360.0, seed=15), False),
    "large": (PhantomSpec(n_proj=1500, n_rows=256, n_cols=2048, center_offset=7.3, seed=16), True),
    "bone180": (PhantomSpec(n_proj=25134, n_rows=2584, n_cols=16606, n_flat=20, n_dark=20, center_offset=-23.3,
                            seed=17), True),
    "bone360": (PhantomSpec(n_proj=25134, n_rows=2584, n_cols=16606, n_flat=20, n_dark=20, center_offset=-23.3,
                            theta_end=360.0, seed=17), True),
}
CONFIG = {"threads": 96, "memory_mb": 500_000, "overhead_mb": 300}
SAMPLE_S = 0.02  # RSS sampling period of the plan's process tree

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from tomosnake.config import TomoConfig
try:
    from tomosnake.stages.plan import make_plan
except ImportError:  # a checkout from before the re-layout of issue 16
    from tomosnake.plan import make_plan
t1, c1 = time.perf_counter(), time.process_time()
plan = make_plan(TomoConfig.model_validate(json.loads(sys.argv[2])), sys.argv[1], "bench")
t2, c2 = time.perf_counter(), time.process_time()
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
with open("/proc/self/io") as f:
    io = dict(line.split(": ") for line in f.read().splitlines())
print(json.dumps({"import_s": t1 - t0, "plan_s": t2 - t1, "plan_cpu_s": c2 - c1, "peak_mib": hwm / 1024,
                  "rchar": int(io["rchar"]),
                  "center": plan.center, "method": plan.center_method, "k": plan.k, "j": plan.j}))
"""


def _frames_read(spec: PhantomSpec) -> tuple[list[int], list[int], list[int], range]:
    """Projections, flats and darks this checkout's plan reads, and the rows of its search band."""
    from tomosnake.recon.center import MAX_FRAME_PIXELS, REFERENCE_FRAMES
    from tomosnake.config import CenterSearch
    from tomosnake.recon.axis import choose_references, frames_needed
    from tomosnake.io.scan import FLAT_CHECK_FRAMES, _sample

    assert FLAT_CHECK_FRAMES <= REFERENCE_FRAMES  # the flat check reads a subset of the frames written

    proj = frames_needed(choose_references(spec.theta(), CenterSearch().pairs))
    flats, darks = _sample(spec.n_flat, REFERENCE_FRAMES), _sample(spec.n_dark, REFERENCE_FRAMES)
    n = min(spec.n_rows, MAX_FRAME_PIXELS // spec.n_cols)
    a = spec.n_rows // 2 - n // 2
    return proj, flats, darks, range(a, a + n)


def write_sparse(path: Path, spec: PhantomSpec) -> None:
    """The scan's whole shape declared, frame chunks; only the frames the plan reads written."""
    proj, flats, darks, band = _frames_read(spec)
    rng = np.random.default_rng(spec.seed)
    frame = (spec.n_rows, spec.n_cols)
    u = np.linspace(-1, 1, spec.n_cols)
    beam = spec.flat_counts * (1.0 - 0.25 * u**2 + 0.05 * np.sin(7 * u))
    theta = spec.theta()
    tmp = path.with_suffix(".tmp")
    with h5py.File(tmp, "w") as f:
        kw = {"dtype": np.uint16, "chunks": (1, *frame)}
        data = f.create_dataset("exchange/data", shape=(spec.n_proj, *frame), fillvalue=10000, **kw)
        white = f.create_dataset("exchange/data_white", shape=(spec.n_flat, *frame), fillvalue=20000, **kw)
        dark = f.create_dataset("exchange/data_dark", shape=(spec.n_dark, *frame), fillvalue=100, **kw)
        f["exchange/theta"] = theta
        rows = np.arange(band.start, band.stop)
        for i in proj:
            out = np.empty(frame, np.uint16)
            out[:] = np.rint(beam + spec.dark_counts).astype(np.uint16)
            att = sinogram_block(spec, theta[i:i + 1], rows)[0]
            out[band.start:band.stop] = rng.poisson(beam * np.exp(-att)) + spec.dark_counts
            data[i] = out
        for i in flats:
            out = np.empty(frame, np.uint16)
            out[:] = np.rint(beam + spec.dark_counts).astype(np.uint16)
            out[band.start:band.stop] = rng.poisson(np.broadcast_to(beam, (len(rows), spec.n_cols))) + spec.dark_counts
            white[i] = out
        for i in darks:
            dark[i] = rng.poisson(spec.dark_counts, frame).astype(np.uint16)
    tmp.rename(path)


def prepare(workdir: Path, name: str) -> tuple[Path, PhantomSpec]:
    spec, sparse = SCANS[name]
    path = workdir / f"{name}.h5"
    if not path.exists():
        t = time.perf_counter()
        if sparse:
            write_sparse(path, spec)
        else:
            write_scan(path, spec)
        print(f"  wrote {path} in {time.perf_counter() - t:.1f} s", flush=True)
    return path, spec


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (algotom's ncore starts workers)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_plan(path: Path, tomosnake: str | None) -> dict:
    env = dict(os.environ)
    if tomosnake:
        env["PYTHONPATH"] = tomosnake
    drop_cache(path)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path.resolve()), json.dumps(CONFIG)], env=env,
                            cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(watched))
        except psutil.NoSuchProcess:
            break
        time.sleep(SAMPLE_S)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"}
    return json.loads(out.strip().splitlines()[-1]) | {"wall_s": wall, "tree_peak_mib": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scans", nargs="+", default=list(SCANS), choices=list(SCANS))
    ap.add_argument("--workdir", type=Path, default=Path("bench-plan"))
    ap.add_argument("--tomosnake", help="directory put first on the plan process's PYTHONPATH (another checkout)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    method = ""
    print(f"{'scan':9} {'shape':>22} {'wall s':>7} {'import s':>8} {'plan s':>7} {'plan cpu':>8} {'peak MiB':>9} "
          f"{'tree MiB':>9} "
          f"{'read MB':>9} {'centre':>9} {'error px':>9}")
    for name in args.scans:
        path, spec = prepare(args.workdir, name)
        r = run_plan(path, args.tomosnake)
        shape = f"{spec.n_proj}x{spec.n_rows}x{spec.n_cols}"
        if "error" in r:
            print(f"{name:9} {shape:>22} failed: {r['error']}", flush=True)
            continue
        print(f"{name:9} {shape:>22} {r['wall_s']:7.2f} {r['import_s']:8.2f} {r['plan_s']:7.2f} {r['plan_cpu_s']:8.2f} "
              f"{r['peak_mib']:9.0f} {r['tree_peak_mib']:9.0f} {r['rchar'] / 1e6:9.1f} {r['center']:9.2f} "
              f"{r['center'] - spec.center:+9.3f}", flush=True)
        method = r["method"]
    print(f"config: {CONFIG}; method of the last: {method}")


if __name__ == "__main__":
    main()
