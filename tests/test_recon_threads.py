"""Threads share a slice (`gridrec.reconstruct`): a wide scan whose budget holds one slice at a time still
reconstructs with every thread, and the volume is the same bit for bit whatever the thread count.

The scan of issue 22: 1500 angles x 4 rows x 4096 px, ``memory_mb`` 15 % above the smallest the plan accepts
(which held one single-threaded gridding worker before). Its speed with 1 and 2 threads is measured by
``benchmarks/recon_threads.py``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import read_only
from tomosnake import config as tconfig
from tomosnake.io.scan import RawScan
from tomosnake.io.vds import stack
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.plan import make_plan, smallest_memory_mb
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.stages.recon_chunk import recon_chunk

SPEC = PhantomSpec(n_proj=1500, n_rows=4, n_cols=4096, center_offset=2.5, seed=3)
MARGIN = 1.15


def config(raw: Path, threads: int, memory_mb: float | None = None) -> tconfig.TomoConfig:
    extra = {} if memory_mb is None else {"memory_mb": memory_mb}
    return tconfig.validate({"input": [str(raw)], "threads": threads, "recon": {"center": SPEC.center}} | extra)


def preprocessed(raw: Path, cfg: tconfig.TomoConfig, d: Path) -> Path:
    """The scan preprocessed as one chunk, stacked as the workflow's VDS."""
    plan = make_plan(cfg, str(raw), "wide", search=False)
    chunk = d / "chunk_0.h5"
    with RawScan(raw, cfg.datasets) as scan:
        process_chunk(scan, cfg.preprocess, 0, plan.shape[0], plan.tile, chunk, threads=cfg.threads)
    stack([chunk], d / "preproc.vds.h5", extra={"exchange/theta": plan.theta_deg})
    return d / "preproc.vds.h5"


def reconstructed(vds: Path, cfg: tconfig.TomoConfig, d: Path) -> tuple[object, np.ndarray]:
    """(plan, volume) of every recon_chunk of the plan of ``cfg``, as written."""
    plan = make_plan(cfg, str(vds.parent / "raw.h5"), "wide", search=False)
    conv = write_range(vds, plan, cfg, d / f"range_{cfg.threads}.json")
    parts = []
    for j in range(plan.j):
        out = d / f"recon_{cfg.threads}_{j}.h5"
        recon_chunk(vds, plan, j, cfg, conv, out)
        with h5py.File(out, "r") as f:
            parts.append(f["exchange/data"][...])
    return plan, np.concatenate(parts)


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> tuple[Path, Path, float]:
    d = tmp_path_factory.mktemp("wide")
    raw = read_only(write_scan(d / "raw.h5", SPEC))
    memory = MARGIN * smallest_memory_mb(config(raw, 2), str(raw), "wide")
    return raw, preprocessed(raw, config(raw, 2, memory), d), memory


@pytest.mark.slow
def test_two_threads_on_one_slice_give_the_same_volume(wide, tmp_path):
    raw, vds, memory = wide
    one_plan, one = reconstructed(vds, config(raw, 1, memory), tmp_path)
    two_plan, two = reconstructed(vds, config(raw, 2, memory), tmp_path)
    # the budget holds one slice at a time, and the plan still gives it both threads
    assert two_plan.slices_per_load == one_plan.slices_per_load == 1
    assert two_plan.recon_threads == 2
    assert one.shape == (SPEC.n_rows, SPEC.n_cols, SPEC.n_cols) and one.std() > 0
    assert np.array_equal(one, two)
