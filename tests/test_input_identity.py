"""Inputs are identified by content, not date (issue 27): a scan replaced by another with an older date
(``cp -p``, ``rsync -a``, a restore) reruns what depends on it; touching an unchanged input over
Snakemake's 1 MB checksum limit, or copying the same bytes over it, reruns nothing. Real runs."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np

from tests.workflow import nothing_to_do, run, volume
from tomosnake import provenance
from tomosnake.io.fingerprint import fingerprint
from tomosnake.phantom import PhantomSpec, write_scan

SPEC = PhantomSpec(n_proj=360, n_rows=8, n_cols=256, center_offset=1.0, seed=11)
OTHER = PhantomSpec(n_proj=360, n_rows=8, n_cols=256, center_offset=1.0, seed=12)  # same shape, other noise


def _stored_fingerprint(path) -> str:
    with h5py.File(path, "r") as f:
        return provenance.read(f)["input_fingerprint"][0]["fingerprint"]


def _first_run(tmp_path):
    a, b = write_scan(tmp_path / "a.h5", SPEC), write_scan(tmp_path / "b.h5", OTHER)
    raw = tmp_path / "data" / "scan.h5"
    raw.parent.mkdir()
    shutil.copy2(a, raw)
    assert raw.stat().st_size > 1 << 20  # above Snakemake's checksum limit: only dates would count
    out = tmp_path / "out"
    cfg = {"input": [str(raw)], "outdir": str(out), "threads": 1, "cleanup": False, "report": False,
           "recon": {"center": SPEC.center}}
    run(tmp_path, cfg)
    return cfg, raw, a, b, out / "scan" / "scan_recon.h5"


def test_a_touched_input_or_the_same_bytes_copied_over_it_rerun_nothing(tmp_path):
    cfg, raw, a, _, _ = _first_run(tmp_path)
    os.utime(raw)  # touched: a newer date, the same bytes
    assert nothing_to_do(tmp_path, cfg)
    shutil.copy2(a, raw)  # the same bytes copied over it (rsync -a): a new file, the old date
    assert nothing_to_do(tmp_path, cfg)


def test_an_input_replaced_with_an_older_date_reruns(tmp_path):
    cfg, raw, _, b, vol = _first_run(tmp_path)
    first = volume(vol)
    old = vol.stat().st_mtime - 3600
    shutil.copy2(b, raw)  # another scan, restored with a date older than every output
    os.utime(raw, (old, old))
    assert not nothing_to_do(tmp_path, cfg)
    run(tmp_path, cfg)
    second = volume(vol)
    assert not np.array_equal(first, second)
    assert _stored_fingerprint(vol) == fingerprint(raw)["fingerprint"]

    fresh = tmp_path / "fresh"  # what a first run of that scan gives
    run(fresh, cfg | {"outdir": str(fresh / "out")})
    np.testing.assert_array_equal(second, volume(fresh / "out" / "scan" / "scan_recon.h5"))
