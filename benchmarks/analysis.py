"""The analysis stage's speed and memory: voxels per second per core, and each job's peak memory against its budget.

    .venv/bin/python benchmarks/analysis.py                   # 128^3 and 192^3 beads, 2 threads, 128 MB of work
    .venv/bin/python benchmarks/analysis.py --sizes 256 --threads 2 --work-mb 128

For each volume (bead packs, voxelised, with noise; written with the histogram combine records) and
each mode (components; watershed), one process runs every analyze_chunk job of the layout the budget
gives, then analysis_merge, as the workflow would: ``work`` is its peak resident memory (VmHWM) less
its resident memory before the first job (interpreter, numpy, h5py, Dask, scikit-image), against the
budget less overhead (``--work-mb``); ``B/voxel`` is that peak over the largest slab with its halo
(`tomosnake.analysis.layout.BYTES_PER_VOXEL` holds the model). Rate: the volume's voxels over the
jobs' wall time, per thread. Baseline, same process: the same smoothing, thresholds and
labelling of the whole volume in memory with scipy alone (one slab, no Dask, one thread); the ratio is
its wall time over the jobs'. ``HWM MB``: the process's peak, merge included; ``objects``: the jobs'
count, ``whole``: the count of one labelling of the whole volume. Exits 1 if a job's work exceeds its budget.
A watershed budget should hold slabs several times deeper than the halo (2 x 24 slices here): at 256^3 and
256 MB the slabs are 3 slices deep and the halo is read 17 times over.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r'''
import json, sys, time
from pathlib import Path
import h5py, numpy as np
from scipy import ndimage
from tomosnake import config as tconfig
from tomosnake.analysis import segment
from tomosnake.analysis.layout import make_layout, seed_distance
from tomosnake.stages.analysis_merge import analysis_merge
from tomosnake.stages.analyze_chunk import analyze_chunk
import dask.array, skimage.feature, skimage.segmentation, skimage.filters  # noqa: F401


def rss(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


volume, work, mb, threads, watershed = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), \
    sys.argv[5] == "1"
cfg = tconfig.validate({"memory_mb": mb, "overhead_mb": 0, "threads": threads, "analysis": {
    "enabled": True, "smooth": 1.0, "watershed": watershed, "particle_radius": 8.0}})
with h5py.File(volume) as f:
    lay = make_layout(f["exchange/data"].shape, cfg)
base = rss("VmRSS")
t0 = time.perf_counter()
chunks = [work / f"chunk_{j}.h5" for j in range(len(lay.jobs))]
for j, path in enumerate(chunks):
    analyze_chunk(volume, lay, j, cfg, path, threads)
t_jobs = time.perf_counter() - t0
peak_jobs = rss("VmHWM") - base
r = analysis_merge(chunks, volume, lay, cfg, work / "labels.h5", work / "a.json", work / "o.csv", "b")
peak_merge = rss("VmHWM") - base
t1 = time.perf_counter()
with h5py.File(volume) as f:
    vol = f["exchange/data"][()]
th = segment.volume_thresholds(volume, 2)
mask = np.digitize(ndimage.gaussian_filter(vol, 1.0), th, right=True) == 1
n = segment.watershed(mask, seed_distance(cfg.analysis)).max() if watershed else ndimage.label(mask)[1]
t_base = time.perf_counter() - t1
slab = max(min(lay.shape[0], b + lay.halo) - max(0, a - lay.halo) for a, b in lay.units) * lay.shape[1] * lay.shape[2]
print(json.dumps({"units": len(lay.units), "jobs": len(lay.jobs), "halo": lay.halo, "voxels": int(np.prod(lay.shape)),
                  "t_jobs": t_jobs, "t_base": t_base, "work_mb": peak_jobs, "merge_mb": peak_merge,
                  "slab_voxels": slab, "count": r["objects"]["count"], "count_whole": int(n)}))
'''


def volume_file(path: Path, n: int) -> Path:
    import h5py
    import numpy as np

    from tomosnake.io.volume_stats import HIST_BINS, histogram_edges
    from tomosnake.phantom_beads import bead_pack, spec, truth
    from tomosnake.stages.combine import HIST_PATH

    beads = bead_pack(n, (5.0, 8.0), int(40 * (n / 64) ** 3 * 0.6), seed=1, touching=True)
    vol = (truth(spec(n, beads, n_proj=8)) + np.random.default_rng(0).normal(0, 0.25, (n, n, n))).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["exchange/data"] = vol
        edges = histogram_edges(vol.dtype, vol[::4, ::4, ::4].ravel())
        f[HIST_PATH] = np.histogram(vol[::4, ::4, ::4], HIST_BINS, (edges[0], edges[-1]))[0]
        f[HIST_PATH + "_edges"] = edges
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work-mb", type=float, default=128.0, help="the analysis budget less overhead_mb")
    args = ap.parse_args()
    over = False
    print(f"{'volume':>7} {'mode':>10} {'slabs':>5} {'halo':>4} {'Mvox/s/core':>11} {'baseline x':>10} "
          f"{'work MB':>8} {'budget MB':>9} {'B/voxel':>7} {'HWM MB':>8} {'objects':>7} {'whole':>5}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            volume = volume_file(Path(tmp) / f"beads_{n}.h5", n)
            for watershed in (False, True):
                work = Path(tmp) / f"w{n}{int(watershed)}"
                work.mkdir()
                proc = subprocess.run([sys.executable, "-c", CHILD, str(volume), str(work), str(args.work_mb),
                                       str(args.threads), str(int(watershed))], capture_output=True, text=True)
                if "AnalysisError" in proc.stderr:  # this budget holds no slab of this mode
                    print(f"{n:>5}^3 {'watershed' if watershed else 'components':>10}  "
                          f"{proc.stderr.strip().splitlines()[-1]}")
                    continue
                if proc.returncode:
                    print(proc.stderr[-3000:])
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                rate = r["voxels"] / r["t_jobs"] / args.threads / 1e6
                over |= r["work_mb"] > args.work_mb
                print(f"{n:>5}^3 {'watershed' if watershed else 'components':>10} {r['units']:>5} {r['halo']:>4} "
                      f"{rate:>11.2f} {r['t_base'] / r['t_jobs']:>10.2f} {r['work_mb']:>8.1f} {args.work_mb:>9.0f} "
                      f"{r['work_mb'] * 2**20 / r['slab_voxels']:>7.1f} {r['merge_mb']:>8.1f} {r['count']:>7} "
                      f"{r['count_whole']:>5}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
