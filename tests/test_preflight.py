"""Preflight: bad input stops before any job is queued, with one line naming the file, dataset or key.

Most cases call `preflight.check` directly; a few run the real `snakemake` in a subprocess and
check that the one line is shown, nothing else is, and no job ran.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import edited_scan, read_only
from tests.workflow import run
from tomosnake import preflight
from tomosnake.config import validate
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import make_plan
from tomosnake.preflight import PreflightError

SPEC = PhantomSpec(n_proj=40, n_rows=6, n_cols=48, center_offset=1.5, seed=2)
BUDGET_MB = 60  # fits SPEC with room to spare (overhead_mb 0)


def _scan(path: Path, edit: dict | None = None) -> Path:
    """A small phantom scan with datasets replaced (None: deleted), made read-only."""
    return edited_scan(path, SPEC, edit)


def sparse_scan(path: Path, n_proj: int, n_rows: int, n_cols: int) -> Path:
    """A scan whose projections are declared but never written (a small file of any shape; they read as
    the fill value, constant counts), with real one-frame flats and darks: preflight reads metadata,
    flats and darks and a few frames only."""
    with h5py.File(path, "w") as f:
        f.create_dataset("exchange/data", shape=(n_proj, n_rows, n_cols), dtype=np.uint16,
                         chunks=(1, min(n_rows, 256), n_cols), fillvalue=10000)
        f["exchange/data_white"] = np.full((1, n_rows, n_cols), 20000, np.uint16)
        f["exchange/data_dark"] = np.full((1, n_rows, n_cols), 100, np.uint16)
        f["exchange/theta"] = np.linspace(0, 180, n_proj, endpoint=False)
    return read_only(path)


def _config(scan: Path | str, outdir: Path, **extra) -> dict:
    return {"input": [str(scan)], "outdir": str(outdir), "memory_mb": BUDGET_MB, "overhead_mb": 0,
            "threads": 1, **extra}


def _fails(raw: dict, *fragments: str) -> str:
    with pytest.raises(PreflightError) as err:
        preflight.check(raw)
    text = str(err.value)
    assert "\n" not in text.strip()
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    return text


BAD_FRAMES = np.full((3, 5, SPEC.n_cols), 20000, np.uint16)  # 5 rows instead of 6
NAN_FLATS = np.full((4, SPEC.n_rows, SPEC.n_cols), np.nan, np.float32)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        ({"exchange/data": None}, ["'/exchange/data' (projections) is missing"]),
        ({"exchange/data_white": BAD_FRAMES}, ["'/exchange/data_white' (flat fields) has shape (3, 5, 48)"]),
        ({"exchange/data_dark": BAD_FRAMES}, ["'/exchange/data_dark' (dark fields) has shape (3, 5, 48)"]),
        ({"exchange/theta": np.arange(39.0)}, ["'/exchange/theta' has (39,) angles but there are 40 projections"]),
        ({"exchange/data_white": NAN_FLATS}, ["flat fields '/exchange/data_white' hold non-finite values"]),
        ({"exchange/data_white": np.zeros((4, 6, 48), np.uint16)}, ["'/exchange/data_white' are all zero"]),
        ({"exchange/data_dark": np.full((4, 6, 48), 30000, np.uint16)}, ["dark fields are brighter than the flat"]),
    ],
    ids=["no-data", "flat-shape", "dark-shape", "theta-length", "nan-flat", "zero-flat", "dark-over-flat"],
)
def test_bad_scan_is_named(tmp_path, edit, fragments):
    scan = _scan(tmp_path / "s.h5", edit)
    _fails(_config(scan, tmp_path / "out"), str(scan), *fragments)


def test_truncated_and_corrupt_files_are_named(tmp_path):
    good = write_scan(tmp_path / "good.h5", SPEC).read_bytes()
    cut, garbled = tmp_path / "cut.h5", tmp_path / "garbled.h5"
    cut.write_bytes(good[: len(good) // 2])
    garbled.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)) + good[4096:])
    for path in (read_only(cut), read_only(garbled)):
        _fails(_config(path, tmp_path / "out"), f"{path}: not a readable HDF5 file")


def test_missing_file_and_config_keys_are_named(tmp_path):
    _fails(_config(tmp_path / "nope.h5", tmp_path / "out"), "nope.h5: input file not found")
    scan = _scan(tmp_path / "s.h5")
    _fails(_config(scan, tmp_path / "out", memroy_mb=3), "config key 'memroy_mb': unknown key")
    _fails(_config(scan, tmp_path / "out") | {"input": []}, "config key 'input': no scan given")
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(scan, twin / "s.h5")
    _fails(_config(scan, tmp_path / "out") | {"input": [str(scan), str(twin / "s.h5")]},
           "config key 'input'", "share the name 's'")


def test_tori_with_wrong_types_is_named(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    bad = tmp_path / "beamline.tori"
    bad.write_text(json.dumps({"file_definitions": {"data_file": str(scan)},
                               "correction_arguments": {"normalize_flat": "yes"}}))
    _fails({"tori": str(bad), "outdir": str(tmp_path / "out")}, str(bad), "normalize_flat")


def test_centre_outside_the_detector_is_named(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    _fails(_config(scan, tmp_path / "out", recon={"center": 48.0}), "config key 'recon.center'", "outside")
    # Cropping narrows the detector: a centre valid on the raw image can fall outside the kept columns.
    crop = {"crop": {"enabled": True, "ranges": [0, -1, 30, -1]}}
    preflight.check(_config(scan, tmp_path / "out", recon={"center": 20.0}))
    _fails(_config(scan, tmp_path / "out", recon={"center": 20.0}, preprocess=crop), "recon.center")


def test_budget_leaving_nothing_after_the_interpreter_is_named(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    _fails(_config(scan, tmp_path / "out", memory_mb=300, overhead_mb=300), "config key 'memory_mb'",
           "'overhead_mb'")


def test_budget_too_small_for_one_subchunk_plus_overlap(tmp_path):
    """Phase retrieval needs every row of a projection in one tile (overlap FULL): a budget that
    runs the plain chain on a tall detector is too small once it is enabled."""
    scan = sparse_scan(tmp_path / "tall.h5", 100, 8192, 256)
    preflight.check(_config(scan, tmp_path / "out"))
    _fails(_config(scan, tmp_path / "out", preprocess={"phase": {"enabled": True}}), str(scan),
           "config key 'memory_mb'", "8192 row(s)")


def test_budget_too_small_for_one_reconstructed_slice(tmp_path):
    scan = sparse_scan(tmp_path / "wide.h5", 3000, 4, 2048)
    _fails(_config(scan, tmp_path / "out"), "config key 'memory_mb'", "one slice of 3000 angles x 2048 px")


@pytest.mark.parametrize("stage", ["preprocess", "recon"])
def test_a_stages_own_budget_is_named(tmp_path, stage):
    scan = _scan(tmp_path / "s.h5")
    _fails(_config(scan, tmp_path / "out", **{f"{stage}_memory_mb": 5}), str(scan), f"config key '{stage}_memory_mb'")


def _larger_than_the_disk(folder: Path) -> Path:
    """A sparse scan whose preprocessed stack alone would need twice the free disk."""
    rows = cols = 2048
    n_proj = math.ceil(2 * shutil.disk_usage(folder).free / (rows * cols * 4))
    return sparse_scan(folder / "huge.h5", n_proj, rows, cols)


def test_not_enough_disk_is_named(tmp_path):
    scan = _larger_than_the_disk(tmp_path)
    raw = _config(scan, tmp_path / "out", memory_mb=1e7)
    _fails(raw, "config key 'outdir'", "GB free", "disk_check")
    preflight.check(raw | {"disk_check": False})


def test_disk_need_counts_what_is_still_to_write(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    cfg = validate(_config(scan, tmp_path / "out", output={"combine": "physical"}))
    plan = preflight.plan_scan(cfg, str(scan), "s")
    e = plan.estimates
    d = tmp_path / "out" / "s"
    full = e["preprocessed_bytes"] + e["recon_chunk_bytes"] + e["volume_bytes"]
    assert preflight.disk_need(plan, cfg, d) == full
    (d / "preproc").mkdir(parents=True)
    (d / "preproc" / "chunk_0.h5").write_bytes(b"x" * 1000)
    assert preflight.disk_need(plan, cfg, d) == full - 1000
    (d / "cleanup.done").write_text("")
    assert preflight.disk_need(plan, cfg, d) == e["recon_chunk_bytes"] + e["volume_bytes"]
    virtual = validate(_config(scan, tmp_path / "out", output={"combine": "virtual", "tiff": True}))
    elsewhere = preflight.disk_need(plan, virtual, tmp_path / "elsewhere")
    assert elsewhere == e["preprocessed_bytes"] + e["recon_chunk_bytes"] + e["volume_bytes"]  # the TIFFs


def test_unwritable_outdir_is_named(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    _fails(_config(scan, a_file / "out"), "config key 'outdir': cannot write in")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if not os.access(locked, os.W_OK):  # root may write anywhere
        _fails(_config(scan, locked / "out"), "config key 'outdir': cannot write in")


def test_good_scan_passes_with_the_checkpoints_chunking(tmp_path):
    """The preflight plan (no centre search) has the chunking and estimates the checkpoint will have."""
    scan = _scan(tmp_path / "s.h5")
    raw = _config(scan, tmp_path / "out", memory_mb=34, subchunks_per_job=1)
    quick = preflight.check(raw)["s"]
    full = make_plan(validate(raw), str(scan), "s")
    assert quick.center is None and full.center is not None
    assert (quick.proj_chunks, quick.sino_chunks, quick.tile, quick.estimates) == (
        full.proj_chunks, full.sino_chunks, full.tile, full.estimates)


# ------------------------------------------------------------- the real snakemake, in a subprocess
def _stopped_before_any_job(work: Path, raw: dict, *fragments: str) -> None:
    proc = run(work, raw, check=False, timeout=300)  # parsing alone takes minutes on a loaded machine
    out = proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tomosnake:")]
    assert proc.returncode != 0, out
    assert len(lines) == 1, out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in out and "Building DAG" not in out, out
    assert not Path(raw["outdir"]).exists()


def test_snakemake_stops_on_missing_projections(tmp_path):
    scan = _scan(tmp_path / "s.h5", {"exchange/data": None})
    _stopped_before_any_job(tmp_path / "work", _config(scan, tmp_path / "out"), str(scan), "'/exchange/data'")


def test_snakemake_stops_on_dark_brighter_than_flat(tmp_path):
    scan = _scan(tmp_path / "s.h5", {"exchange/data_dark": np.full((4, 6, 48), 30000, np.uint16)})
    _stopped_before_any_job(tmp_path / "work", _config(scan, tmp_path / "out"), str(scan), "brighter")


def test_snakemake_stops_on_a_bad_tori(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    bad = tmp_path / "beamline.tori"
    bad.write_text(json.dumps({"file_definitions": {"data_file": str(scan)},
                               "reconstruction_arguments": {"recon_kwargs": {"center": "middle"}}}))
    _stopped_before_any_job(tmp_path / "work", {"tori": str(bad), "outdir": str(tmp_path / "out")}, str(bad),
                            "center")


def test_snakemake_stops_on_a_small_budget(tmp_path):
    scan = _scan(tmp_path / "s.h5")
    _stopped_before_any_job(tmp_path / "work", _config(scan, tmp_path / "out", memory_mb=5), str(scan),
                            "config key 'memory_mb'")


def test_snakemake_stops_on_a_full_disk(tmp_path):
    scan = _larger_than_the_disk(tmp_path)
    _stopped_before_any_job(tmp_path / "work", _config(scan, tmp_path / "out", memory_mb=1e7),
                            "config key 'outdir'", "GB free")


def test_jobs_re_parsing_the_workflow_skip_the_checks(tmp_path):
    """A cluster job's snakemake (--mode remote) parses the Snakefile again but runs no preflight."""
    raw = _config(tmp_path / "nope.h5", tmp_path / "out")
    proc = run(tmp_path / "work", raw, "--mode", "remote", "-n", check=False, timeout=120)
    assert "tomosnake:" not in proc.stdout + proc.stderr
    assert "Building DAG" in proc.stdout + proc.stderr
