"""Every frame a pre-processing job reads is checked (issue 27): preflight samples a few frames, so the
faults below pass it and must stop the job naming file, dataset and frame; all-zero projections are
usable and warned about in the log and on the report's first page. Real phantom HDF5 files, edited."""

from __future__ import annotations

import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import edited_scan
from tests.workflow import run
from tomosnake import preflight
from tomosnake.config import validate
from tomosnake.io.scan import RawScan, ScanError
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.preprocess_chunk import process_chunk

SPEC = PhantomSpec(n_proj=40, n_rows=6, n_cols=48, center_offset=1.5, seed=3)
UNSAMPLED = 3  # preflight samples frames 0, 6, 11, 17, 22, 28, 33, 39 of 40
BASE = {"overhead_mb": 0, "memory_mb": 60, "threads": 1, "recon": {"center": SPEC.center}}


def _stacks(tmp: Path) -> dict[str, np.ndarray]:
    with h5py.File(write_scan(tmp / "scratch.h5", SPEC), "r") as f:
        out = {k: f[f"exchange/{k}"][()] for k in ("data", "data_white", "data_dark")}
    (tmp / "scratch.h5").unlink()
    return out


def _cfg(scan: Path, out: Path):
    return validate({**BASE, "input": [str(scan)], "outdir": str(out)})


def _preprocess(scan: Path, out: Path) -> Path:
    """Preflight passes (the fault is outside what it samples); then the chunk job's own work."""
    preflight.check({**BASE, "input": [str(scan)], "outdir": str(out)})
    cfg = _cfg(scan, out)
    target = out / "chunk.h5"
    with RawScan(scan, cfg.datasets) as raw:
        process_chunk(raw, cfg.preprocess, 0, SPEC.n_proj, (SPEC.n_proj, SPEC.n_rows), target, threads=1)
    return target


def nan_flat_frame_5(s: dict) -> dict:
    flats = s["data_white"].astype(np.float32)
    flats[5, 2, 7] = np.nan
    return {"exchange/data_white": flats}


def zero_flats_column_frames_1_9(s: dict) -> dict:
    flats = s["data_white"].copy()
    flats[1:10, :, 30] = 0
    return {"exchange/data_white": flats}


def nan_unsampled_projection(s: dict) -> dict:
    data = s["data"].astype(np.float32)
    data[UNSAMPLED, 4, 12] = np.nan
    return {"exchange/data": data}


def negative_unsampled_projection(s: dict) -> dict:
    data = s["data"].astype(np.int32)
    data[UNSAMPLED, :, 9] = -7
    return {"exchange/data": data}


@pytest.mark.parametrize(("edit", "fragments"), [
    (nan_flat_frame_5, ("'/exchange/data_white'", "frame 5", "NaN", "column 7")),
    (zero_flats_column_frames_1_9, ("'/exchange/data_white'", "frame 1", "at or below", "column 30", "9 of the 10")),
    (nan_unsampled_projection, ("'/exchange/data'", f"frame {UNSAMPLED}", "NaN", "column 12")),
    (negative_unsampled_projection, ("'/exchange/data'", f"frame {UNSAMPLED}", "negative", "-7", "column 9")),
], ids=lambda x: x.__name__ if callable(x) else "")
def test_a_fault_preflight_does_not_sample_stops_the_job_naming_the_frame(tmp_path, edit, fragments):
    scan = edited_scan(tmp_path / "scan.h5", SPEC, edit(_stacks(tmp_path)))
    with pytest.raises(ScanError) as err:
        _preprocess(scan, tmp_path / "out")
    text = str(err.value)
    assert "\n" not in text and str(scan) in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert not (tmp_path / "out" / "chunk.h5").exists()


def test_negative_float_counts_are_refused_by_preflight(tmp_path):
    data = _stacks(tmp_path)["data"].astype(np.float32)
    data[:, :, 20] = -50
    scan = edited_scan(tmp_path / "neg.h5", SPEC, {"exchange/data": data})
    with pytest.raises(preflight.PreflightError, match=r"'/exchange/data' \(float32\) hold negative counts"):
        preflight.check({**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out")})
    with pytest.raises(ScanError, match="frame 0 holds negative counts .* column 20"):
        with RawScan(scan) as raw:
            raw.projections(0, 4, 0, SPEC.n_rows)


def test_the_failed_job_says_its_one_line_in_a_real_run(tmp_path):
    scan = edited_scan(tmp_path / "scan.h5", SPEC, nan_unsampled_projection(_stacks(tmp_path)))
    proc = run(tmp_path, {**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out"), "report": False},
               check=False, timeout=300)
    assert proc.returncode != 0
    log = (tmp_path / "out" / "scan" / "logs" / "preprocess_0.log").read_text()
    line = next(ln for ln in log.splitlines() if "CRITICAL" in ln)
    assert f"{scan}: projections '/exchange/data' frame {UNSAMPLED} holds NaN" in line
    assert "Traceback" not in log
    assert not (tmp_path / "out" / "scan" / "scan_recon.h5").exists()


def test_unsampled_all_zero_projections_warn_in_the_log_and_on_the_report(tmp_path):
    data = _stacks(tmp_path)["data"]
    data[[UNSAMPLED, UNSAMPLED + 1]] = 0
    scan = edited_scan(tmp_path / "scan.h5", SPEC, {"exchange/data": data})
    run(tmp_path, {**BASE, "input": [str(scan)], "outdir": str(tmp_path / "out"), "cleanup": False}, timeout=300)
    warning = f"'/exchange/data' frames {UNSAMPLED}, {UNSAMPLED + 1} (2 in all) are all zero"
    assert warning in (tmp_path / "out" / "scan" / "logs" / "preprocess_0.log").read_text()
    pdf = tmp_path / "out" / "scan" / "scan_report.pdf"
    page1 = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-raw", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert warning in " ".join(page1.split()), page1[:1500]
