"""Sinogram stripe removal, one implementation for ``preprocess.stripe`` and ``recon.stripe``.

Both run in the reconstruction stage, where every job holds whole sinograms
(all projections of its rows), so stripe removal never ties preprocessing jobs
to the whole scan and its result does not depend on k or j. ``function`` is:

- ``profile`` (default): a detector column whose response is off by a constant
  (gain or offset) adds the same value to its sinogram column at every angle.
  In each of 8 angular sectors the column means are compared with their local
  level over ``size`` columns (`_detrended_residual`); offsets found alike in
  most sectors are subtracted from every projection (divided out, as gains, when
  the data are not yet -log), other columns stay bit-identical (`stripe_profile`).
  A few passes over the block, vectorised.
- ``sorting``: N. T. Vo's sorting-based method (each column sorted along the
  angle, a median over ``size`` columns of the sorted sinogram, unsorted),
  vectorised over the whole block; it also follows stripes that vary with angle.
- any stripe removal of `algotom.prep.removal` by name (e.g. ``remove_all_stripe``),
  run per sinogram, with ``kwargs`` checked against its signature.

``profile`` and ``sorting`` are written here because algotom's functions take one
sinogram at a time (a Python loop over rows) and none tests a stripe for consistency
over the angle, which is what keeps clean columns unchanged.

Measured in ``benchmarks/stripe.py`` (gain stripes on an analytic phantom): ``profile``
brings the error to that of the stripe-free scan and leaves a clean scan unchanged, about
150x faster than algotom's ``remove_all_stripe``, whose defaults (``sm_size`` 21,
``la_size`` 61) also flatten the object's own narrow features and double the error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OWN = {"profile": {"size": 7}, "sorting": {"size": 5}}  # our methods and their keyword defaults
SECTORS, AGREE = 8, 0.75  # profile: angular ranges compared, and the share that must agree
IGNORED_KWARGS = {"ncore", "nchunk"}  # TomoPy's parallelism arguments; threads are ours


@dataclass(frozen=True)
class TomopyEquivalent:
    """What runs for a TomoPy stripe function (the names the beamline's Reconstructor GUI writes in a .tori):
    ``function`` (ours or algotom's), the TomoPy keywords ``renamed`` to its own, keywords ``fixed`` to behave as
    TomoPy does, and TomoPy's keywords it has no counterpart for (``dropped``: its own default applies). ``same``:
    the same published method; else the closest one, which `from_tomopy` says in its note."""

    function: str
    why: str
    renamed: dict[str, str] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    same: bool = True


# TomoPy's stripe removals (tomopy.prep.stripe; the GUI lists them by these names). algotom holds N. T. Vo's
# methods under the same names, and the regularization (Titarenko) and wavelet-FFT (Münch) methods under its
# own; TomoPy's smoothing filter (a column's mean over the angles levelled with its neighbours', a constant
# per column) has no algotom counterpart: `profile` finds the same constant column offsets.
_VO = "the same method of N. T. Vo's in algotom"
TOMOPY: dict[str, TomopyEquivalent] = {
    **{name: TomopyEquivalent(name, _VO) for name in (
        "remove_stripe_based_sorting", "remove_stripe_based_filtering", "remove_large_stripe",
        "remove_stripe_based_interpolation")},
    "remove_dead_stripe": TomopyEquivalent("remove_dead_stripe", _VO, dropped=("norm",)),
    "remove_stripe_based_fitting": TomopyEquivalent(
        "remove_stripe_based_fitting", _VO + " (its sigma is one value, TomoPy's a pair)", dropped=("sigma",)),
    "remove_stripe_ti": TomopyEquivalent(
        "remove_stripe_based_regularization", "Titarenko's regularization method, as algotom implements it "
        "(its alpha is a regularization weight, not TomoPy's damping factor)",
        renamed={"nblock": "num_chunk"}, fixed={"apply_log": False, "sort": False}, dropped=("alpha",)),
    "remove_stripe_fw": TomopyEquivalent(
        "remove_stripe_based_wavelet_fft", "Münch's wavelet-FFT method, as algotom implements it",
        renamed={"wname": "wavelet_name", "sigma": "size"}, fixed={"window_name": "gaussian", "sort": False},
        dropped=("pad",)),
    "remove_stripe_sf": TomopyEquivalent(
        "profile", "TomoPy's smoothing filter levels each column's mean over the angles with its neighbours'; "
        "'profile' removes the same constant column offsets where the angular sectors agree",
        same=False),
    "remove_all_stripe": TomopyEquivalent(
        "profile", "algotom's remove_all_stripe (Vo's combination) raised the error on a phantom with gain "
        "stripes and is about 150x slower (benchmarks/stripe.py); set preprocess.stripe.function: "
        "remove_all_stripe to run it anyway", dropped=("snr", "la_size", "sm_size", "dim", "drop_ratio"),
        same=False),
}


def from_tomopy(name: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """The stripe function and keywords that run for TomoPy's ``name`` with ``kwargs``, and a note (None where
    the same method runs with every keyword given): which method runs instead, and what is not carried over.
    A null keyword is TomoPy's "default" and is left out. A name TomoPy does not have is returned unchanged."""
    eq = TOMOPY.get(name)
    if eq is None:
        return name, dict(kwargs), None
    given = {k: v for k, v in kwargs.items() if v is not None and k not in IGNORED_KWARGS}
    if eq.function in OWN:  # TomoPy's smoothing filter keeps its window (odd, at least 3), nothing else does
        size = given.get("size") if name == "remove_stripe_sf" else None
        out = {} if size is None else {"size": max(3, int(size) | 1)}
        lost = sorted(set(given) - set(out))
    else:
        out = {eq.renamed.get(k, k): v for k, v in given.items() if k not in eq.dropped}
        if "num_chunk" in out:  # TomoPy's nblock 0: the whole sinogram as one block
            out["num_chunk"] = max(1, int(out["num_chunk"]))
        out |= eq.fixed
        lost = sorted(k for k in given if k in eq.dropped)
    if eq.same and not lost and eq.function == name:
        return eq.function, out, None
    runs = f"'{eq.function}'" + ("" if eq.same else " (the closest method, not the same)")
    note = f"TomoPy's stripe function '{name}' runs as {runs}: {eq.why}"
    if lost:
        note += "; not carried over: " + ", ".join(f"{k}={given[k]!r}" for k in lost)
    return eq.function, out, note


def _algotom_function(name: str) -> Callable[..., np.ndarray]:
    from algotom.prep import removal

    full = name if name.startswith("remove_") else f"remove_{name}"
    available = sorted(n for n in dir(removal) if n.startswith("remove_") and "stripe" in n)
    if full not in available:
        raise ValueError(f"stripe function '{name}' is neither {' nor '.join(OWN)} nor one of algotom's: "
                         f"{', '.join(available)}")
    return getattr(removal, full)


def checked(function: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with defaults, TomoPy's parallelism keys dropped; ValueError on unknown keys."""
    kw = {k: v for k, v in kwargs.items() if k not in IGNORED_KWARGS}
    if function in OWN:
        unknown = sorted(set(kw) - set(OWN[function]))
        if unknown:
            raise ValueError(f"stripe function '{function}' takes only {', '.join(OWN[function])}, "
                             f"not {', '.join(unknown)}")
        out = OWN[function] | kw
        if not (isinstance(out["size"], int) and out["size"] >= 3 and out["size"] % 2 == 1):
            raise ValueError(f"stripe function '{function}': size must be an odd integer >= 3, got {out['size']}")
        return out
    params = inspect.signature(_algotom_function(function)).parameters
    unknown = [k for k in kw if k not in params or k == "sinogram"]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"stripe function '{function}' takes no {', '.join(unknown)}")
    return kw


def _median_columns(a: np.ndarray, size: int) -> np.ndarray:
    """Median over ``size`` neighbouring columns (last axis), reflected at the ends.

    Every row is padded and laid end to end so scipy's fast 1-D median runs once
    over the whole array (much faster than its n-D filter with a (1, ..., size) footprint).
    """
    from scipy import ndimage  # lazy: see tomosnake/__init__.py
    r = size // 2
    pad = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(r, r)], mode="reflect")
    med = ndimage.median_filter(pad.reshape(-1), size=size, mode="reflect").reshape(pad.shape)
    return med[..., r:r + a.shape[-1]]


def _detrended_residual(profile: np.ndarray, size: int) -> np.ndarray:
    """``profile`` minus a robust local level, along the last axis (reflected at the ends).

    The level at column c is the median over the window of ``profile[c + k] - k * slope``,
    the slope being the median of the window's central differences that do not involve c:
    a straight profile leaves no residue (a plain median of a profile steeper than a stripe
    returns the stripe itself), and a stripe is one value among ``size``.
    """
    h = size // 2
    n = profile.shape[-1]
    pad = np.pad(profile, [(0, 0)] * (profile.ndim - 1) + [(h + 1, h + 1)], mode="reflect")

    def at(k: int) -> np.ndarray:
        return pad[..., h + 1 + k:h + 1 + k + n]

    slope = np.median(np.stack([(at(k + 1) - at(k - 1)) / 2 for k in range(-h, h + 1) if abs(k) != 1]), axis=0)
    return profile - np.median(np.stack([at(k) - k * slope for k in range(-h, h + 1)]), axis=0)


def stripe_profile(block: np.ndarray, size: int, sectors: int = SECTORS, agree: float = AGREE,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The constant-over-angle column offsets of the sinograms of ``block`` (rows, columns), float64.

    The projections are cut into ``sectors`` contiguous angular ranges; in each, the column means'
    residual from their local level (`_detrended_residual`) is a stripe candidate. A stripe is the
    same in every range, while the object's own features move with the angle (except features
    centred on the axis, which no sinogram method can tell from stripes): a column is corrected
    by the median of its candidates only where at least ``agree`` of them have that sign and at
    least a third of that size.  Columns that are not corrected are exactly unchanged.
    ``transform`` is applied to one sector at a time before its mean (working memory: one sector).
    """
    n = block.shape[0]
    parts = max(1, min(sectors, n // 4))
    def sector_mean(i: int) -> np.ndarray:
        part = block[n * i // parts:n * (i + 1) // parts]
        return (part if transform is None else transform(part)).mean(axis=0, dtype=np.float64)

    cand = np.stack([_detrended_residual(sector_mean(i), size) for i in range(parts)])
    med = np.median(cand, axis=0)
    same = (np.sign(cand) == np.sign(med)) & (np.abs(cand) >= np.abs(med) / 3)
    return np.where(same.mean(axis=0) >= agree, med, 0.0)


def _profile(block: np.ndarray, size: int, logged: bool) -> np.ndarray:
    if logged:
        block -= stripe_profile(block, size).astype(np.float32)[None]
    else:  # gains: offsets of the log
        offsets = stripe_profile(block, size, transform=lambda part: np.log(np.clip(part, 1e-6, None)))
        block /= np.exp(offsets).astype(np.float32)[None]
    return block


def _sorting(block: np.ndarray, size: int) -> np.ndarray:
    order = np.argsort(block, axis=0, kind="stable")
    smoothed = _median_columns(np.take_along_axis(block, order, axis=0), size)
    np.put_along_axis(block, order, smoothed, axis=0)
    return block


def remove_stripes(block: np.ndarray, function: str = "profile", kwargs: dict[str, Any] | None = None, *,
                   logged: bool = True, threads: int = 1) -> np.ndarray:
    """Remove stripes from the sinograms of ``block`` (projections, rows, columns), float32, in place.

    Every projection of the rows must be present (the result depends on all of them).
    ``logged``: the data are -log (stripes are offsets) rather than transmission (gains);
    it matters for ``profile`` only.  Returns ``block``.
    """
    kw = checked(function, kwargs or {})
    if function == "profile":
        return _profile(block, kw["size"], logged)
    if function == "sorting":
        return _sorting(block, kw["size"])
    func = _algotom_function(function)

    def one(r: int) -> None:
        block[:, r, :] = func(np.ascontiguousarray(block[:, r, :]), **kw)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(one, range(block.shape[1])))
    return block
