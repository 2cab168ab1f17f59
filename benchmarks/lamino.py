"""Laminography backprojection speed: voxel-angle updates per second, against a plain numpy reference.

    .venv/bin/python benchmarks/lamino.py            # 128^2 x 16 and 256^2 x 8 voxels, 360 angles
    .venv/bin/python benchmarks/lamino.py --quick    # 64^2 x 8 voxels, 90 angles
    .venv/bin/python benchmarks/lamino.py --memory   # peak RSS of one slab against `lamino.slab_bytes`

The method is direct: every voxel interpolates every projection, O(N^2 * height * n_proj) updates
(TomocuPy's Fourier method is O(N^3 log N)). `tomosnake.recon.lamino.backproject` does each angle's
bilinear interpolation with `scipy.ndimage.map_coordinates` on the slab's row window; the reference
does the same arithmetic with numpy gathers (floor, four weights, fancy indexing), one angle at a time.
Both run on the same random filtered data; the script checks they agree and prints the speed ratio.
Timings are wall-clock on a shared machine: compare the ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

import numpy as np

from tomosnake.config import ReconConfig
from tomosnake.recon import lamino


def reference(filtered: np.ndarray, theta_deg: np.ndarray, geom: lamino.Geometry, i0: int, i1: int) -> np.ndarray:
    """Plain numpy bilinear backprojection with `lamino.backproject`'s geometry and scale (no padding, row0 = 0)."""
    n = geom.n_cols
    a = math.radians(geom.angle_deg)
    h = (n - 1) / 2
    x = (np.arange(n) - h)[None, None, :]
    y = (h - np.arange(n))[None, :, None]
    z = geom.z(np.arange(i0, i1))[:, None, None]
    rows, cols = filtered.shape[1:]
    out = np.zeros((i1 - i0, n, n))
    for t, th in enumerate(np.deg2rad(theta_deg)):
        u = np.broadcast_to(geom.center + x * math.cos(th) + y * math.sin(th), out.shape)
        v = geom.v_center + z * math.cos(a) - (x * math.sin(th) - y * math.cos(th)) * math.sin(a)
        # Points inside the data only (map_coordinates' mode 'constant'): zero elsewhere.
        ok = (u >= 0) & (u <= cols - 1) & (v >= 0) & (v <= rows - 1)
        uk, vk = u[ok], v[ok]
        u0 = np.clip(np.floor(uk).astype(int), 0, cols - 2)
        v0 = np.clip(np.floor(vk).astype(int), 0, rows - 2)
        fu, fv = uk - u0, vk - v0
        img = filtered[t]
        out[ok] += ((1 - fu) * (1 - fv) * img[v0, u0] + fu * (1 - fv) * img[v0, u0 + 1]
                    + (1 - fu) * fv * img[v0 + 1, u0] + fu * fv * img[v0 + 1, u0 + 1])
    return (out * math.pi * math.cos(a) / len(theta_deg)).astype(np.float32)


def run(n: int, height: int, n_proj: int, threads: int) -> dict:
    geom = lamino.Geometry(20.0, n_rows=height + n // 2, n_cols=n, height=height, center=(n - 1) / 2 + 0.7)
    theta = np.linspace(0, 360, n_proj, endpoint=False)
    filtered = np.random.default_rng(0).standard_normal((n_proj, geom.n_rows, n)).astype(np.float32)
    updates = n * n * height * n_proj
    t0 = time.perf_counter()
    fast = lamino.backproject(filtered, 0, theta, geom, 0, height, threads=threads)
    t1 = time.perf_counter()
    ref = reference(filtered, theta, geom, 0, height)
    t2 = time.perf_counter()
    err = float(np.abs(fast - ref).max() / np.abs(ref).max())
    return {"voxels": f"{n}^2 x {height}", "angles": n_proj, "threads": threads,
            "backproject_Mupd_s": updates / (t1 - t0) / 1e6, "reference_Mupd_s": updates / (t2 - t1) / 1e6,
            "speedup": (t2 - t1) / (t1 - t0), "max_rel_diff": err}


# One slab in a fresh interpreter: the window as a job reads it, then `reconstruct_slab` (or nothing: baseline).
_SLAB_CODE = """
import resource, sys, numpy as np
from tomosnake.config import ReconConfig
from tomosnake.recon import lamino
n, n_proj, slices, angle, threads, run = (int(a) for a in sys.argv[1:])
cfg = ReconConfig(lamino={"enabled": True, "angle": angle, "height": 4 * slices}, circ_mask={"enabled": True})
geom = lamino.geometry(cfg, 4 * slices + n, n, (n - 1) / 2)
theta = np.linspace(0, 360, n_proj, endpoint=False)
r0, r1 = lamino.row_window(geom, theta, slices, 2 * slices)
print(r1 - r0)
if run:
    window = np.random.default_rng(0).random((n_proj, r1 - r0, n), dtype=np.float32) + 0.5
    lamino.reconstruct_slab(window, r0, theta, cfg, geom, slices, 2 * slices, False, threads)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def memory(n: int, n_proj: int, slices: int, angle: int, threads: int) -> dict:
    """Peak RSS of a slab's process less an interpreter that imported the same, against the model."""
    peaks, rows = [], 0
    for run_it in (0, 1):
        proc = subprocess.run([sys.executable, "-c", _SLAB_CODE, str(n), str(n_proj), str(slices), str(angle),
                               str(threads), str(run_it)], capture_output=True, text=True, check=True)
        rows, peak = (int(x) for x in proc.stdout.split())
        peaks.append(peak)
    cfg = ReconConfig(lamino={"enabled": True, "angle": angle, "height": 4 * slices}, circ_mask={"enabled": True})
    model = lamino.slab_bytes(n_proj, rows, slices, n, cfg, threads)
    return {"case": f"{n}^2 x {slices}, {n_proj} angles, {rows} rows", "measured_MB": (peaks[1] - peaks[0]) / 2**20,
            "model_MB": model / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true")
    args = ap.parse_args()
    if args.memory:
        for n, n_proj, slices in ((256, 720, 8), (512, 360, 4)):
            r = memory(n, n_proj, slices, 20, args.threads)
            print(f"{r['case']}: peak RSS over an idle interpreter {r['measured_MB']:.0f} MB, "
                  f"slab_bytes model {r['model_MB']:.0f} MB ({r['measured_MB'] / r['model_MB']:.2f} x)")
        return
    sizes = [(64, 8, 90)] if args.quick else [(128, 16, 360), (256, 8, 360)]
    print(f"{'voxels':>12} {'angles':>6} {'threads':>7} {'backproject Mupd/s':>19} {'reference Mupd/s':>17} "
          f"{'speed-up':>8} {'max rel diff':>12}")
    for n, height, n_proj in sizes:
        r = run(n, height, n_proj, args.threads)
        print(f"{r['voxels']:>12} {r['angles']:>6} {r['threads']:>7} {r['backproject_Mupd_s']:>19.2f} "
              f"{r['reference_Mupd_s']:>17.2f} {r['speedup']:>8.2f} {r['max_rel_diff']:>12.1e}")


if __name__ == "__main__":
    main()
