"""The reconstruction chain of one block of sinogram rows (rule recon_chunk_{j}).

Order, each step switchable in `ReconConfig`: -log, 360->180 stitching, excluded
projections, padding, sinogram stripe removal (``preprocess.stripe``, then
``recon.stripe``: both run here on whole sinograms, see `tomosnake.recon.stripe`),
reconstruction, ring removal, circular mask.  Conversion to a smaller dtype is separate (`convert`), with a range
computed once for the whole volume (`conversion_range`) so that every chunk is scaled alike.
"""

from __future__ import annotations

import numpy as np

from tomosnake.config import Convert, ReconConfig, StripeRemoval
from tomosnake.recon import gridrec, steps
from tomosnake.recon.backends import get_backend
from tomosnake.recon.stripe import remove_stripes


def stripe_passes(cfg: ReconConfig, pre_stripe: StripeRemoval | None = None) -> list[StripeRemoval]:
    """The enabled stripe removals, in order: ``preprocess.stripe`` (moved here), then ``recon.stripe``."""
    return [s for s in (pre_stripe, cfg.stripe) if s is not None and s.enabled]


def _old_center(cfg: ReconConfig) -> float:
    c = cfg.sino_360_to_180.old_center
    if c is None or c == "auto":  # the plan resolves it (`tomosnake.stages.plan.resolve_recon`)
        raise ValueError("recon.sino_360_to_180.old_center must be resolved (the axis of the 360-degree scan)")
    return float(c)


def output_width(n_cols: int, cfg: ReconConfig) -> int:
    """Width N of the reconstructed N x N slices for detector width ``n_cols``."""
    if cfg.sino_360_to_180.enabled:
        return steps.width_after_360(_old_center(cfg), n_cols)
    return n_cols


def _padded_width(n_cols: int, cfg: ReconConfig) -> tuple[int, int]:
    width = output_width(n_cols, cfg)
    npad = steps.pad_amount(width, cfg.pad.npad) if cfg.pad.enabled else 0
    return width, width + 2 * npad


def slice_bytes(n_proj: int, n_cols: int, cfg: ReconConfig, pre_stripe: StripeRemoval | None = None) -> int:
    """Working memory that grows with each sinogram row of a block (bytes), for the planner.

    A block of k rows peaks at about ``block_overhead_bytes + k * slice_bytes``.  Per row:
    the float32 input, its -log and padded copies (and a stripe-removed one), the output
    slice and its ring-removal copy, and the previous load's slice in the output's dtype, which
    `tomosnake.stages.recon_chunk` writes while this one is reconstructed.
    """
    width, padded = _padded_width(n_cols, cfg)
    n_half = n_proj // 2 if cfg.sino_360_to_180.enabled else n_proj
    # profile works in place (one copy where the input is not copied before); sorting keeps int64 indices
    # and two sorted copies; algotom's functions run per row (a few sinograms per thread: in the fixed part)
    stripe = max([0] + [1 if p.function == "profile" else 5 if p.function == "sorting" else 1
                        for p in stripe_passes(cfg, pre_stripe)])
    copies = 2 + stripe + int(cfg.sino_360_to_180.enabled)
    written = np.dtype(cfg.convert.output_dtype).itemsize
    return int(4 * n_proj * n_cols * 2 + 4 * n_half * padded * copies + (4 * 2 + written) * width**2)


def block_overhead_bytes(n_proj: int, n_cols: int, cfg: ReconConfig, threads: int = 1) -> int:
    """Working memory of a block that does not grow with its rows (bytes): the gridding's
    (`gridrec.working_bytes`: shared points, one slice pair's spectrum and grid, each thread's strip);
    ring removal's polar images."""
    width, padded = _padded_width(n_cols, cfg)
    n_half = n_proj // 2 if cfg.sino_360_to_180.enabled else n_proj
    gridding = gridrec.working_bytes(n_half, gridrec.fft_length(padded), width, max(1, threads))
    ring = 0
    if cfg.ring_removal.enabled:
        n_polar = int(round(2 * np.pi * width / 2)) * steps.RING_R_SCALE * (width // 2)
        ring = 8 * 6 * n_polar + 8 * 5 * width**2
    return int(gridding + ring)


def reconstruct_block(proj: np.ndarray, theta_deg: np.ndarray, cfg: ReconConfig, center: float,
                      log_applied: bool, threads: int, pre_stripe: StripeRemoval | None = None) -> np.ndarray:
    """Reconstruct a block read from /exchange/data[:, r0:r1, :] to (n_slices, N, N) float32.

    ``proj`` is (n_proj, n_slices, n_cols) flat/dark-normalised transmission, or already
    -log when ``log_applied``; it is not modified.  ``center`` is the rotation axis in
    columns of the data after 360->180 stitching, before padding.  ``pre_stripe`` is
    ``preprocess.stripe``, which runs here on whole sinograms.
    """
    data = np.asarray(proj, dtype=np.float32)
    theta = np.asarray(theta_deg, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] != theta.shape[0]:
        raise ValueError(f"proj must be (n_proj, n_slices, n_cols) with n_proj = len(theta); got {data.shape}")
    logged = cfg.minus_log is True or (cfg.minus_log == "auto" and not log_applied)
    if logged:
        data = steps.minus_log(data)
    if cfg.sino_360_to_180.enabled:
        data, theta = steps.sino_360_to_180(data, theta, _old_center(cfg))
    data, theta = steps.exclude_projections(data, theta, cfg.excluded_proj)
    width = data.shape[2]
    npad = steps.pad_amount(width, cfg.pad.npad) if cfg.pad.enabled else 0
    data = steps.pad_columns(data, npad, cfg.pad.mode)
    for stripe in stripe_passes(cfg, pre_stripe):
        if data is proj:
            data = data.copy()
        data = remove_stripes(data, stripe.function, stripe.kwargs, logged=logged or log_applied, threads=threads)
    run = get_backend(cfg.backend)
    rec = run(data, np.deg2rad(theta), center + npad, width, cfg.algorithm, cfg.filter_name, threads,
              **cfg.algorithm_params())
    rec = np.asarray(rec, dtype=np.float32)
    return steps.post_process(rec, cfg)


# -------------------------------------------------------------------- conversion
def conversion_range(sample: np.ndarray, cfg: Convert) -> tuple[float, float]:
    """(vmin, vmax) for `convert`, computed once from a sample of the volume.

    Stored ``min``/``max`` win whatever the mode (as the GUI does); otherwise 'minmax'
    takes the sample's extremes and 'std' mean -/+ n_sigma standard deviations, over the
    finite values of the sample.
    """
    vmin, vmax = cfg.min, cfg.max
    if vmin is None or vmax is None:
        vals = np.asarray(sample, dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            raise ValueError("the sample for the conversion range has no finite values")
        if cfg.mode == "std":
            mean, sd = float(vals.mean()), float(vals.std())
            lo, hi = mean - cfg.n_sigma * sd, mean + cfg.n_sigma * sd
        else:
            lo, hi = float(vals.min()), float(vals.max())
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    if not vmax > vmin:
        vmax = vmin + 1.0  # a constant sample: any non-empty range maps it to 0
    return float(vmin), float(vmax)


def convert(block: np.ndarray, cfg: Convert, vmin: float, vmax: float) -> np.ndarray:
    """Cast slices to ``cfg.dtype``: integers as round(full_scale * (x - vmin) / (vmax - vmin)),
    clipped; float16 a plain cast; float32 (or conversion disabled) unchanged."""
    if not cfg.enabled or cfg.dtype == "float32":
        return np.asarray(block, dtype=np.float32)
    if cfg.dtype == "float16":
        return np.asarray(block).astype(np.float16)
    top = float(np.iinfo(cfg.dtype).max)
    scaled = (np.asarray(block, dtype=np.float32) - np.float32(vmin)) * np.float32(top / (vmax - vmin))
    np.clip(scaled, 0.0, top, out=scaled)
    return np.rint(scaled, out=scaled).astype(cfg.dtype)
