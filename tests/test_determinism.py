"""The same input and parameters give a bit-identical volume whatever the threads and the chunking.

The workflow's stages are called directly (what the rules' scripts do) on a phantom, with corrections
that run in threads (outlier, flattening, phase retrieval, sinogram stripe removal) and the default
backend, whose FINUFFT spreading is the part that was not deterministic across threads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_only
from tests.workflow import volume
from tomosnake import config as tconfig
from tomosnake.stages.combine import combine
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import SLICE_PAIR, make_plan, split
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.recon_chunk import recon_chunk
from tomosnake.io.scan import RawScan
from tomosnake.io.vds import stack

DEFAULT_THREADS = tconfig.TomoConfig().threads
SPEC = PhantomSpec(n_proj=240, n_rows=8, n_cols=160, center_offset=1.5, seed=7)
STEPS = {"outlier": {"enabled": True}, "flatten": {"enabled": True, "size": 16},
         "phase": {"enabled": True, "filter": "generalised", "alpha": 0.01}}


def _volume(raw: Path, d: Path, threads: int, k: int, j: int, per_load: int) -> np.ndarray:
    """The stages with ``threads`` threads, ``k`` preprocessing and ``j`` reconstruction chunks of
    ``per_load`` slices a load, into folder ``d``; the combined volume."""
    cfg = tconfig.validate({"input": [str(raw)], "threads": threads, "preprocess": STEPS,
                            "recon": {"center": SPEC.center, "stripe": {"enabled": True}}})
    plan = make_plan(cfg, str(raw), "phantom")
    plan = replace(plan, proj_chunks=split(plan.shape[0], k), sino_chunks=split(plan.shape[1], j, SLICE_PAIR),
                   slices_per_load=per_load)
    chunks = [d / "preproc" / f"chunk_{n}.h5" for n in range(k)]
    with RawScan(raw, cfg.datasets) as scan:
        for (p0, p1), path in zip(plan.proj_chunks, chunks, strict=True):
            process_chunk(scan, cfg.preprocess, p0, p1, (max(1, (p1 - p0) // 2), plan.shape[1]), path,
                          threads=threads)
    stack(chunks, d / "preproc.vds.h5", extra={"exchange/theta": plan.theta_deg})
    conv = write_range(d / "preproc.vds.h5", plan, cfg, d / "range.json")
    recons = [d / "recon" / f"recon_{n}.h5" for n in range(j)]
    for n, path in enumerate(recons):
        recon_chunk(d / "preproc.vds.h5", plan, n, cfg, conv, path)
    combine(recons, plan, cfg, conv, d / "phantom_recon.h5", config_path=d / "phantom_recon.yaml")
    return volume(d / "phantom_recon.h5")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("det") / "phantom.h5", SPEC))


def test_threads_and_chunking_give_the_same_volume_bit_for_bit(raw, tmp_path):
    """At the default threads, one chunk of each kind against one thread and against 3 preprocessing
    and 2 reconstruction chunks of 2-slice loads (before the fix: 3e-7 and 1e-9 to 3e-9 apart)."""
    assert DEFAULT_THREADS > 1
    ref = _volume(raw, tmp_path / "a", threads=DEFAULT_THREADS, k=1, j=1, per_load=8)
    assert np.isfinite(ref).all() and ref.std() > 0
    for name, threads, k, j, per_load in [("one thread", 1, 1, 1, 8), ("chunks", DEFAULT_THREADS, 3, 2, 2)]:
        other = _volume(raw, tmp_path / name, threads, k, j, per_load)
        assert np.array_equal(other, ref), (name, float(np.abs(other - ref).max()))
