"""Stripe removal: speed and error of the default method against algotom's ``remove_all_stripe``.

Run: ``python benchmarks/stripe.py [--proj 720 --rows 4 --cols 1024]``.  A phantom (off-centre
elliptical shell and inclusions, exact line integrals, Poisson noise at 2e5 counts), once clean
and once with 8 detector columns at gains 0.97-1.03.  Both methods run on the same -log sinogram
block, one thread each, in the same process; errors are RMS differences of the reconstruction
to that of the noise-free, stripe-free scan, relative to its range (the FOV only).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from algotom.prep import removal

from tomosnake.config import ReconConfig
from tomosnake.phantom import PhantomSpec, sinogram_block
from tomosnake.recon.chain import reconstruct_block
from tomosnake.recon.quality import fov_mask
from tomosnake.recon.stripe import remove_stripes

SHELL = ((1.0, 0.80, 0.70, 0.9, 0.05, 0.03, 0, 10.0), (-0.8, 0.76, 0.66, 0.9, 0.05, 0.03, 0, 10.0),
         (0.5, 0.2, 0.1, 0.9, 0.3, -0.2, 0, 30.0), (0.6, 0.05, 0.05, 0.9, -0.3, 0.2, 0, 0.0),
         (0.3, 0.15, 0.25, 0.9, -0.2, -0.3, 0, -20.0))
GAINS = [0.97, 0.98, 0.99, 1.01, 1.02, 1.03, 0.975, 1.025]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proj", type=int, default=720)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=1024)
    args = ap.parse_args()
    spec = PhantomSpec(n_proj=args.proj, n_rows=args.rows + 2, n_cols=args.cols, ellipsoids=SHELL,
                       max_attenuation=1.0)
    theta, rows = spec.theta(), np.arange(1, args.rows + 1)
    line = sinogram_block(spec, theta, rows)
    rng = np.random.default_rng(1)
    gains = np.ones(args.cols)
    gains[rng.choice(np.arange(args.cols // 8, 7 * args.cols // 8), len(GAINS), replace=False)] = GAINS
    counts = rng.poisson(2e5 * np.exp(-line))
    logs = {"clean": -np.log(counts / 2e5).astype(np.float32),
            "striped": -np.log(counts * gains / 2e5).astype(np.float32)}
    cfg, mask = ReconConfig(minus_log=False), fov_mask(args.cols, 0.95)
    ideal = reconstruct_block(line.astype(np.float32), theta, cfg, spec.center, True, 2)

    def err(sino: np.ndarray) -> float:
        rec = reconstruct_block(sino, theta, cfg, spec.center, True, 2)
        return float(np.sqrt(np.mean((rec - ideal)[:, mask] ** 2)) / np.ptp(ideal[:, mask]))

    def algotom_all(block: np.ndarray) -> np.ndarray:
        out = np.empty_like(block)
        for r in range(block.shape[1]):
            out[:, r] = removal.remove_all_stripe(np.ascontiguousarray(block[:, r]))
        return out

    methods = {"none": lambda b: b, "algotom remove_all_stripe": algotom_all,
               "profile (default)": lambda b: remove_stripes(b.copy(), "profile"),
               "sorting (vectorised Vo)": lambda b: remove_stripes(b.copy(), "sorting"),
               "algotom sorting": lambda b: remove_stripes(b.copy(), "remove_stripe_based_sorting"),
               "algotom filtering": lambda b: remove_stripes(b.copy(), "remove_stripe_based_filtering")}
    print(f"{args.proj} projections x {args.rows} rows x {args.cols} columns, 1 thread")
    print(f"{'method':28s} {'seconds':>8s} {'striped':>8s} {'clean':>8s}")
    times = {}
    for name, f in methods.items():
        t0 = time.perf_counter()
        out = f(logs["striped"])
        times[name] = time.perf_counter() - t0
        print(f"{name:28s} {times[name]:8.3f} {err(out):8.4f} {err(f(logs['clean'])):8.4f}", flush=True)
    ratio = times["algotom remove_all_stripe"] / times["profile (default)"]
    print(f"speed ratio remove_all_stripe / profile: {ratio:.0f}x")


if __name__ == "__main__":
    main()
