"""The chunk driver: tiles read with overlaps, concatenated over chunks, equal whole-stack processing."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

import tomosnake.stages.preprocess_chunk as pre
from tests.conftest import TOOTH
from tomosnake.config import InputConfig, PreprocessConfig
from tomosnake.corrections import FULL, REGISTRY, Needs, Step, flatdark, register
from tomosnake.corrections.phase import coefficient, reach
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import split
from tomosnake.stages.preprocess_chunk import (
    MemoryBudgetError,
    build_chain,
    output_window,
    process_chunk,
    process_whole,
    subchunk_shape,
)
from tomosnake.io.scan import RawScan

SPEC = PhantomSpec(n_proj=30, n_rows=36, n_cols=64, i0_drift=0.2, seed=2)
TOL = 1e-5  # max |chunked - whole| / max |whole|

PHASE = {"enabled": True, "pixel_size": 0.00055, "dist": 28.0, "energy": 20.0, "alpha": 0.0005}
EVERY = {  # every correction on (stripes run in recon, not here): unity and I0-from-air need whole projections
    "flat_dark": {"method": "median"}, "i0": {"enabled": True, "source": "air", "air_columns": 3},
    "normalize_to_unity": {"enabled": True}, "flatten": {"enabled": True, "size": 6},
    "crop": {"enabled": True, "ranges": (2, 33, 1, -1)}, "outlier": {"enabled": True, "dif": 0.02, "size": 3},
    "stripe": {"enabled": True},
    "background": {"enabled": True, "air": 3}, "minus_log_before_phase": True, "phase": PHASE,
    "minus_log_after_phase": True,
}
PHASE_REACH = reach(coefficient(0.00055, 28.0, 20.0, 0.0005))  # rows the generalised filter needs
LOCAL = {  # every correction with a finite neighbourhood: real row overlaps
    "i0": {"enabled": True, "source": "monitor"}, "flatten": {"enabled": True, "size": 6},
    "crop": {"enabled": True, "ranges": (3, 34, 2, 61)}, "outlier": {"enabled": True, "dif": 0.02, "size": 4},
    "background": {"enabled": True, "air": 3}, "minus_log_before_phase": True, "phase": PHASE,
}


def config(sections: dict, phase_filter: str | None = None) -> PreprocessConfig:
    """The sections' config, with Paganin's filter set to ``phase_filter`` when given."""
    if phase_filter:
        sections = sections | {"phase": sections.get("phase", {}) | {"filter": phase_filter}}
    return PreprocessConfig.model_validate(sections)


@pytest.fixture(scope="module")
def scan_path(tmp_path_factory) -> Path:
    return write_scan(tmp_path_factory.mktemp("pre") / "scan.h5", SPEC)


def chunked(scan: RawScan, cfg: PreprocessConfig, k: int, tile: tuple[int, int], out: Path) -> np.ndarray:
    parts = []
    for i, (p0, p1) in enumerate(split(scan.info.n_proj, k)):
        path = out / f"chunk_{k}_{tile[0]}x{tile[1]}_{i}.h5"
        process_chunk(scan, cfg, p0, p1, tile, path, threads=2)
        with h5py.File(path, "r") as f:
            parts.append(f["exchange/data"][()])
    return np.concatenate(parts)


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and np.all(np.isfinite(a))
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize(("sections", "phase_filter", "cases", "needs"), [
    (EVERY, None, [(1, (30, 36)), (3, (4, 2)), (4, (1, 1))], Needs(0, FULL)),
    (EVERY, "generalised", [(2, (3, 2)), (3, (10, 5)), (5, (1, 1))], Needs(0, FULL)),
    (LOCAL, "generalised", [(1, (30, 36)), (3, (5, 3)), (4, (2, 1)), (2, (7, 8))], Needs(0, 3 + 2 + PHASE_REACH)),
    ({k: v for k, v in LOCAL.items() if k not in ("flatten", "phase")} | {"stripe": EVERY["stripe"]}, None,
     [(2, (3, 2)), (3, (10, 5)), (4, (1, 1))], Needs(0, 2)),
    (LOCAL | {"normalize_to_unity": {"enabled": True}}, None, [(3, (4, 1)), (2, (1, 36)), (1, (30, 5))],
     Needs(0, FULL)),
], ids=["every", "every-generalised", "local", "stripes", "whole-projections"])
def test_chunked_tiles_equal_whole_processing(scan_path, tmp_path, sections, phase_filter, cases, needs):
    cfg = config(sections, phase_filter)
    with RawScan(scan_path) as scan:
        assert build_chain(cfg, scan.info.has_i0).needs == needs
        whole = process_whole(scan, cfg, threads=2)
        r0, r1, c0, c1 = output_window(SPEC.n_rows, SPEC.n_cols, cfg)
        assert whole.shape == (SPEC.n_proj, r1 - r0, c1 - c0)
        for k, tile in cases:
            assert rel_diff(chunked(scan, cfg, k, tile, tmp_path), whole) <= TOL, (k, tile)


def test_tiles_without_their_overlap_would_differ(scan_path, tmp_path, monkeypatch):
    """The control: the same tiles read with no overlap are measurably wrong, so the test above can fail."""
    cfg = config(LOCAL, "generalised")
    with RawScan(scan_path) as scan:
        whole = process_whole(scan, cfg)
        real = build_chain

        def no_overlap(c, has_i0=None, n_frames=None):
            chain = real(c, has_i0, n_frames)
            return pre.Chain(chain.steps, Needs(), chain.cfg)

        monkeypatch.setattr(pre, "build_chain", no_overlap)
        assert rel_diff(chunked(scan, cfg, 3, (5, 3), tmp_path), whole) > 1e-3


def test_real_tooth_scan_chunked_equals_whole(tmp_path):
    cfg = config({"outlier": {"enabled": True, "dif": 0.1}, "minus_log_before_phase": True,
                  "phase": PHASE | {"alpha": 0.002}, "crop": {"enabled": True, "ranges": (0, -1, 20, 620)}},
                 "generalised")
    with RawScan(TOOTH, InputConfig()) as scan:
        whole = process_whole(scan, cfg)
        for k, tile in [(2, (7, 1)), (5, (40, 2))]:
            assert rel_diff(chunked(scan, cfg, k, tile, tmp_path), whole) <= TOL


def test_output_file_attributes_shape_and_progress_log(scan_path, tmp_path, caplog):
    cfg = config(LOCAL, "generalised")
    out = tmp_path / "c.h5"
    with RawScan(scan_path) as scan, caplog.at_level(logging.INFO, logger="tomosnake.stages.preprocess_chunk"):
        process_chunk(scan, cfg, 7, 20, (5, 11), out, threads=1)
    with h5py.File(out, "r") as f:
        d = f["exchange/data"]
        assert d.shape == (13, 31, 59) and d.dtype == np.float32
        assert bool(d.attrs["log_applied"]) and (d.attrs["p0"], d.attrs["p1"]) == (7, 20)
        assert list(d.attrs["steps"]) == ["flat_dark", "i0_monitor", "flatten", "crop", "outlier", "background",
                                          "minus_log_before_phase", "phase:generalised"]
    tiles = [r for r in caplog.records if "preprocess tile" in r.getMessage()]
    assert len(tiles) == 3 * 3 and tiles[-1].getMessage().startswith("preprocess tile 9/9")


def test_a_failing_chunk_leaves_no_output(scan_path, tmp_path):
    """A correction raising in the second tile: no output file, no temporary left behind."""

    def fail_late(block, ctx):
        if ctx.proj[0] > 0:
            raise RuntimeError("correction failed")
        return block

    register("test_fail", order=99)(lambda cfg, facts: Step("test_fail", fail_late))
    try:
        with RawScan(scan_path) as scan, pytest.raises(RuntimeError, match="correction failed"):
            process_chunk(scan, config({}), 0, 30, (10, 36), tmp_path / "c.h5")
    finally:
        del REGISTRY["test_fail"]
    assert list(tmp_path.iterdir()) == []


def test_subchunk_shape_fits_the_budget_and_is_the_largest():
    mb, n_proj, n_rows, n_cols = 1 << 20, 900, 512, 640
    stripes = LOCAL | {"stripe": EVERY["stripe"]}
    for sections, pf in [(LOCAL, "generalised"), (EVERY, None), ({}, None), (stripes, "generalised")]:
        chain = build_chain(config(sections, pf), has_i0=True)
        r0, r1, _, _ = output_window(n_rows, n_cols, chain.cfg)

        def peak(tp: int, tr: int, chain: pre.Chain = chain) -> int:
            return chain.peak_bytes(pre._read_shape(chain, (tp, tr), n_proj, n_rows, n_cols))

        for budget in [40 * mb, 300 * mb, 3000 * mb]:
            try:
                tp, tr = subchunk_shape(chain, budget, n_proj, n_rows, n_cols)
            except MemoryBudgetError:
                assert budget < 3000 * mb
                continue
            assert peak(tp, tr) <= budget
            if chain.needs.proj is FULL:
                assert tp == n_proj
            if tr < r1 - r0:  # rows limited by the budget: one more does not fit
                assert (tp == 1 or chain.needs.proj is FULL) and peak(tp, tr + 1) > budget
            elif tp < n_proj:  # whole rows, projections limited by the budget
                assert peak(tp + 1, tr) > budget
    chain = build_chain(config(EVERY))
    with pytest.raises(MemoryBudgetError, match=r"at least (\d+) MB") as err:
        subchunk_shape(chain, 16 * mb, 900, 512, 640)
    need = int(err.value.args[0].split("at least ")[1].split(" MB")[0])
    tp, tr = subchunk_shape(chain, need * mb, 900, 512, 640)
    assert tp >= 1 and tr == 33 - 2  # whole (cropped) projections
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("sections", [EVERY, LOCAL, {"crop": LOCAL["crop"]}], ids=["every", "local", "crop"])
def test_memory_estimate_covers_a_measured_tile(scan_path, monkeypatch, sections):
    """tracemalloc's peak while reading and running one tile stays under the chain's estimate, and near it."""
    monkeypatch.setattr(flatdark, "FRAME_BATCH_BYTES", 4096)  # so that the block, not the frame batch, dominates
    cfg = config(sections, "generalised")
    shape = (SPEC.n_proj, SPEC.n_rows, SPEC.n_cols)
    with RawScan(scan_path) as scan:
        chain = build_chain(cfg, scan.info.has_i0)
        ctx = pre.Context(proj=(0, SPEC.n_proj), rows=(0, SPEC.n_rows), image=(SPEC.n_rows, SPEC.n_cols),
                          raw_rows=(0, SPEC.n_rows), source=scan, threads=1)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        chain.run(scan.projections(0, SPEC.n_proj, 0, SPEC.n_rows), ctx)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    estimate = chain.peak_bytes(shape) - pre.FIXED_BYTES
    assert 0.5 * estimate < peak <= estimate, (peak, estimate)
