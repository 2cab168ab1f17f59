"""The vocabulary of a correction: what it needs around a block, what it sees, how it registers.

A correction is a plain function ``f(block, ctx) -> block`` on a float32 block
(projections, rows, columns) that may work in place. A *factory* reads the
step's parameters from `PreprocessConfig` and returns a configured `Step`, or
None when the step is switched off; ``@register(name, order)`` adds the factory
to the registry. `order` places it in the GUI's order (formats.md): adding a
correction is one new module in this package, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from tomosnake.config import PreprocessConfig


class _Full:
    """Sentinel: the whole axis."""

    _instance: _Full | None = None

    def __new__(cls) -> _Full:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "FULL"

    def __reduce__(self) -> str:
        return "FULL"


FULL = _Full()
Extent = int | _Full


def _add(a: Extent, b: Extent) -> Extent:
    return FULL if a is FULL or b is FULL else a + b  # type: ignore[operator]


@dataclass(frozen=True)
class Needs:
    """Neighbourhood a step needs on each side of the pixels it outputs; columns are always full width."""

    proj: Extent = 0
    rows: Extent = 0

    def then(self, later: Needs) -> Needs:
        """Needs of this step followed by ``later``: overlaps add up (FULL absorbs)."""
        return Needs(_add(self.proj, later.proj), _add(self.rows, later.rows))


class Source(Protocol):
    """Where flats, darks and the beam monitor come from (`tomosnake.io.scan.RawScan` is one)."""

    def flats(self, r0: int, r1: int) -> np.ndarray: ...
    def darks(self, r0: int, r1: int) -> np.ndarray: ...
    def i0(self, p0: int, p1: int) -> np.ndarray | None: ...
    def frames_label(self, kind: str) -> str: ...  # names the flat or dark frames in an error


@dataclass(frozen=True)
class Facts:
    """What a factory may need to know of the scan beyond the config."""

    has_i0: bool | None = None  # None: unknown (planning without the file)
    n_frames: int | None = None  # largest of the flat and dark stacks; None: unknown


@dataclass(frozen=True)
class Context:
    """Where a block lies and what it may use: global offsets in the current image coordinates."""

    proj: tuple[int, int]  # projections of the block (selected coordinates)
    rows: tuple[int, int]  # rows of the block in the current image (changes at crop)
    image: tuple[int, int]  # (rows, columns) of the whole current image
    raw_rows: tuple[int, int]  # rows of the block in the scan (for flats and darks)
    source: Source
    threads: int = 1
    cache: dict = field(default_factory=dict, compare=False)  # per row range, shared by projection tiles

    def moved(self, **changes: Any) -> Context:
        return replace(self, **changes)


Apply = Callable[[np.ndarray, Context], np.ndarray]


def each_projection(block: np.ndarray, fn: Callable[[np.ndarray], object], threads: int) -> np.ndarray:
    """``fn`` on every projection of ``block`` (in place), on ``threads`` threads: for elementwise steps,
    whose numpy loops release the GIL; the result cannot depend on the threads."""
    if threads <= 1 or len(block) <= 1:
        for proj in block:
            fn(proj)
    else:
        with ThreadPoolExecutor(min(threads, len(block))) as pool:
            list(pool.map(fn, block))
    return block
Work = Callable[[tuple[int, int, int], int], int]  # (block shape, threads) -> extra bytes


def _no_work(shape: tuple[int, int, int], threads: int) -> int:
    return 0


@dataclass(frozen=True)
class Step:
    """A configured correction."""

    name: str
    apply: Apply
    needs: Needs = Needs()
    work: Work = _no_work  # transient working memory beyond the block while the step runs, bytes
    resident: Work = _no_work  # memory the step keeps for the whole tile loop (cached references), bytes
    reframe: Callable[[Context], Context] | None = None  # for steps that change the image geometry (crop)
    threaded: bool = False  # runs on the context's threads (the others on one: elementwise numpy, HDF5 reads)


Factory = Callable[[PreprocessConfig, Facts], Step | None]


@dataclass(frozen=True)
class Entry:
    order: float
    name: str
    factory: Factory


REGISTRY: dict[str, Entry] = {}


def register(name: str, order: float) -> Callable[[Factory], Factory]:
    """Register a step factory under ``name`` at position ``order`` of the chain."""

    def deco(factory: Factory) -> Factory:
        if name in REGISTRY:
            raise ValueError(f"correction '{name}' is registered twice")
        REGISTRY[name] = Entry(order, name, factory)
        return factory

    return deco


def configured_steps(cfg: PreprocessConfig, facts: Facts = Facts()) -> list[Step]:
    """The enabled steps, in chain order."""
    steps = []
    for entry in sorted(REGISTRY.values(), key=lambda e: (e.order, e.name)):
        step = entry.factory(cfg, facts)
        if step is not None:
            steps.append(step)
    return steps
