"""Stripe removal on sinograms with algotom's implementations (Vo et al.), chosen by name.

``stripe.function`` names a function of `algotom.prep.removal` (TomoPy's names
for Vo's methods are the same; ``all_stripe`` means ``remove_all_stripe``); its
``kwargs`` are checked against the function's signature. A sinogram holds every
projection of one row, so the step needs all projections (proj FULL) and the
full width.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tomosnake.config import PreprocessConfig
from tomosnake.corrections.base import FULL, Context, Facts, Needs, Step, register

IGNORED_KWARGS = {"ncore", "nchunk"}  # TomoPy's parallelism arguments; threads are ours
SINOGRAM_COPIES = 24  # float32 sinogram sizes algotom allocates per call (tracemalloc: 21 for remove_all_stripe)


def stripe_function(name: str) -> Callable[..., np.ndarray]:
    """The algotom stripe-removal function called ``name`` (``all_stripe`` -> ``remove_all_stripe``)."""
    from algotom.prep import removal  # here, not above: it imports numba and SciPy's signal (seconds)

    full = name if name.startswith("remove_") else f"remove_{name}"
    func = getattr(removal, full, None)
    available = sorted(n for n in dir(removal) if n.startswith("remove_") and "stripe" in n)
    if full not in available or not callable(func):
        raise ValueError(f"preprocess.stripe.function '{name}' is not one of algotom's stripe removals: "
                         f"{', '.join(available)}")
    return func


def checked_kwargs(func: Callable[..., np.ndarray], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without TomoPy's parallelism keys, rejecting keys ``func`` does not take."""
    params = inspect.signature(func).parameters
    kw = {k: v for k, v in kwargs.items() if k not in IGNORED_KWARGS}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kw if k not in params or k == "sinogram"]
    if unknown and not takes_any:
        raise ValueError(f"preprocess.stripe.kwargs: {func.__name__} takes no {', '.join(unknown)}")
    return kw


def remove_stripes(block: np.ndarray, func: Callable[..., np.ndarray], kwargs: dict[str, Any],
                   threads: int = 1) -> np.ndarray:
    """Apply ``func`` to the sinogram of every row of ``block`` (all projections), in place.

    Threads suffice: most of the time is in scipy's rank filter, which releases the GIL.
    """

    def one(r: int) -> None:
        block[:, r, :] = func(np.ascontiguousarray(block[:, r, :]), **kwargs)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(block.shape[1])))
    return block


@register("stripe", order=70)
def stripe(cfg: PreprocessConfig, facts: Facts) -> Step | None:
    c = cfg.stripe
    if not c.enabled:
        return None
    func = stripe_function(c.function)
    kwargs = checked_kwargs(func, c.kwargs)

    def apply(block: np.ndarray, ctx: Context) -> np.ndarray:
        return remove_stripes(block, func, kwargs, ctx.threads)

    def work(shape: tuple[int, int, int], threads: int) -> int:
        return threads * SINOGRAM_COPIES * shape[0] * shape[2] * 4

    return Step(f"stripe:{func.__name__}", apply, needs=Needs(proj=FULL), work=work)
