"""Parity of the default backend (gridrec) with TomoPy's gridrec, against the truth and against each other.

    .venv/bin/python benchmarks/tomopy_parity.py            # two phantoms x every filter, the tooth scan
    .venv/bin/python benchmarks/tomopy_parity.py --quick    # 256 px, 3 filters

TomoPy must import (`.ci/tomopy.sh` builds it into the venv; or the conda env envs/tomopy.yaml).
Phantoms: Shepp-Logan -log sinograms with Poisson noise (20000 flat counts), centre off the middle by
3.3 px, sampled well (900 angles for 512 px: angles >= 1.5 x width) and badly (181 angles for 640 px, as
the tooth scan). Each goes through `reconstruct_block` with the default chain (edge padding width // 4
each side) for the default backend and TomoPy's gridrec, and with padding off for TomoPy ("unpadded").
Figures: relative RMSE against the truth inside 0.98 of the field of view after a gain/offset fit
(`quality.accuracy`); "vs TomoPy" is the default fitted to TomoPy's padded volume (RMSE of TomoPy's
range, and the gain), also after a Gaussian blur of sigma 2 px of both (what differs at coarse scales).
"centred": TomoPy's slices moved onto the axis-centred grid (`tomopy_grid_shift`), their one difference
in geometry.

Then, to say why they differ (shepp filter): the error on noise-free data (the discretisation and the
gridding alone), the noise each passes (the reconstruction of the noise alone, std in the truth's
range after the gain fit), and the real tooth scan (tests/data/tooth.h5, centre 296 as in issue 25).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tomosnake.config import ReconConfig
from tomosnake.phantom import PhantomSpec, ground_truth, sinogram_block
from tomosnake.recon import BackendUnavailable, gridrec, quality, reconstruct_block, require_backend

TOOTH = Path(__file__).resolve().parents[1] / "tests" / "data" / "tooth.h5"
CASES = {False: [("well", 512, 900), ("tooth-like", 640, 181)], True: [("quick", 256, 384)]}
ROWS = np.arange(6, 10)  # of 16: through the small ellipsoids


def noisy(clean: np.ndarray, counts: float, seed: int = 0) -> np.ndarray:
    """-log of Poisson counts for line integrals ``clean`` under ``counts`` flat counts."""
    rng = np.random.default_rng(seed)
    detected = rng.poisson(counts * np.exp(-clean)).clip(1, None)
    return (-np.log(detected / counts)).astype(np.float32)


def recon(sino: np.ndarray, theta: np.ndarray, center: float, backend: str, filt: str, pad: bool,
          threads: int) -> np.ndarray:
    cfg = ReconConfig(minus_log=False, backend=backend, filter_name=filt, pad={"enabled": pad})
    return reconstruct_block(sino, theta, cfg, center, True, threads)


def blur(vol: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(s.astype(np.float64), 2.0) for s in vol])


def tomopy_grid_shift(vol: np.ndarray) -> np.ndarray:
    """TomoPy's slices moved onto the axis-centred grid: its gridrec crops the pdim x pdim grid so that the
    axis falls on pixel ceil(n/2) (libtomo gridrec.c: padx = (pdim - ngridx) / 2), the default backend's
    and the truth's on (n - 1)/2: off by half a pixel (even n) or one (odd n), down and to the left."""
    from scipy.ndimage import fourier_shift

    n = vol.shape[-1]
    off = np.ceil(n / 2) - (n - 1) / 2
    return np.stack([np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(s), (off, -off)))) for s in vol])


def noise_std(noise_rec: np.ndarray, gain: float, truth: np.ndarray) -> float:
    """Std of a reconstruction of the noise alone, in units of the truth's range, after the volume's gain."""
    m = quality.fov_mask(noise_rec.shape[-1])
    return float(abs(gain) * noise_rec[:, m].std() / np.ptp(truth[:, m]))


def phantom_case(name: str, width: int, n_proj: int, filters: tuple[str, ...], threads: int) -> None:
    spec = PhantomSpec(n_cols=width, n_rows=16, n_proj=n_proj, center_offset=3.3)
    theta = spec.theta()
    clean = sinogram_block(spec, theta, ROWS).astype(np.float32)
    data = noisy(clean, spec.flat_counts)
    truth = ground_truth(spec, ROWS)
    print(f"\n{name}: {width} px, {n_proj} angles ({n_proj / width:.2f} x width), Poisson, {len(ROWS)} slices")
    print(f"  {'filter':12s} {'default':>8s} {'TomoPy':>8s} {'centred':>8s} {'unpadded':>9s}   vs TomoPy: {'RMSE':>6s} "
          f"{'gain':>6s} {'blurred':>8s} {'centred':>8s}")
    for filt in filters:
        d = recon(data, theta, spec.center, "gridrec", filt, True, threads)
        tp = recon(data, theta, spec.center, "tomopy", filt, True, threads)
        tu = recon(data, theta, spec.center, "tomopy", filt, False, threads)
        tc = tomopy_grid_shift(tp)
        e = [quality.accuracy(v, truth)["rmse"] for v in (d, tp, tc, tu)]
        vs = quality.accuracy(d, tp)
        vs_blur, vs_centred = quality.accuracy(blur(d), blur(tp))["rmse"], quality.accuracy(d, tc)["rmse"]
        print(f"  {filt:12s} {e[0]:8.4f} {e[1]:8.4f} {e[2]:8.4f} {e[3]:9.4f}   {'':10s} {vs['rmse']:6.3f} "
              f"{vs['gain']:6.3f} {vs_blur:8.4f} {vs_centred:8.4f}")
    print("  why (shepp):")
    for backend, pad, label in (("gridrec", True, "default"), ("tomopy", True, "TomoPy"),
                                ("tomopy", False, "TomoPy unpadded")):
        noise_free = recon(clean, theta, spec.center, backend, "shepp", pad, threads)
        acc = quality.accuracy(noise_free, truth)
        noise = recon(data - clean, theta, spec.center, backend, "shepp", pad, threads)
        passed = noise_std(noise, acc["gain"], truth)
        print(f"    {label:16s} noise-free RMSE {acc['rmse']:.4f}  noise passed {passed:.4f}  gain {acc['gain']:.3f}"
              + (f"  on the centred grid {quality.accuracy(tomopy_grid_shift(noise_free), truth)['rmse']:.4f}"
                 if backend == "tomopy" else ""))
    hann_d = recon(data, theta, spec.center, "gridrec", "hann", True, threads)
    cfg = ReconConfig(minus_log=False, backend="tomopy", filter_name="hann", filter_par=[1.0])
    hann_t = tomopy_grid_shift(reconstruct_block(data, theta, cfg, spec.center, True, threads))
    err, vs = quality.accuracy(hann_t, truth)["rmse"], quality.accuracy(hann_d, hann_t)["rmse"]
    print(f"    TomoPy's hann with filter_par [1.0] (the default's hann), centred: {err:.4f}, vs default {vs:.4f}")


def tooth(threads: int) -> None:
    import h5py

    with h5py.File(TOOTH, "r") as f:
        raw = f["exchange/data"][...].astype(np.float32)
        flat = f["exchange/data_white"][...].mean(axis=0)
        dark = f["exchange/data_dark"][...].mean(axis=0)
        theta = f["exchange/theta"][...]
    trans = (raw - dark) / np.maximum(flat - dark, 1e-6)
    print(f"\ntooth.h5 (real, {raw.shape[2]} px, {raw.shape[0]} angles, {raw.shape[1]} rows), centre 296: "
          "default fitted to TomoPy (padded)")
    for filt in ("shepp", "none"):
        vols = [reconstruct_block(trans, theta, ReconConfig(backend=b, filter_name=filt), 296.0, False, threads)
                for b in ("gridrec", "tomopy")]
        vs = quality.accuracy(*vols)
        print(f"  {filt:12s} RMSE {vs['rmse']:.3f}  gain {vs['gain']:.3f}  blurred (sigma 2 px) RMSE "
              f"{quality.accuracy(blur(vols[0]), blur(vols[1]))['rmse']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small phantom, three filters, no tooth")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    try:
        require_backend("tomopy", "gridrec")
    except BackendUnavailable as err:
        raise SystemExit(f"tomopy_parity: {err}") from None
    t0 = time.perf_counter()
    filters = ("ramlak", "shepp", "cosine") if args.quick else gridrec.FILTERS
    for name, width, n_proj in CASES[args.quick]:
        phantom_case(name, width, n_proj, filters, args.threads)
    if not args.quick:
        tooth(args.threads)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
