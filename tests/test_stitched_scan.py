"""Stitching in the pipeline: one phantom scan split into three overlapping files with motor positions a few
pixels off, read back by `StitchedScan` and run through the real Snakefile."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import read_only
from tests.workflow import fit_error, run, scheduled_rules, volume
from tomosnake.config import ConfigError, PreprocessConfig, StitchConfig, validate
from tomosnake.corrections.flatdark import FLOOR
from tomosnake.phantom import PhantomSpec, ground_truth, write_scan
from tomosnake.preflight import scans
from tomosnake.stages.preprocess_chunk import process_whole
from tomosnake.io.scan import RawScan, ScanError
from tomosnake.corrections.stitch import stitch_block
from tomosnake.io.stitched_scan import StitchedScan, find_offsets, open_scan

SPEC = PhantomSpec(n_proj=180, n_rows=8, n_cols=160, center_offset=2.0, seed=5)
TRUE_OFFSETS = [0, 48, 96]  # three files of 64 columns, 16 columns of overlap each
WIDTH = 64
MOTOR_ERROR = [0, 3, -4]  # pixels the recorded motor positions are off by
PIXEL = 0.0065  # mm; positions are recorded in mm


def write_parts(full: Path, out_dir: Path, order: tuple[int, ...] = (0, 1, 2)) -> list[Path]:
    """The columns ``TRUE_OFFSETS[i]:+WIDTH`` of every dataset of ``full`` as file ``part_i.h5`` (returned in
    ``order``), with the lateral motor position at ``instrument/sample/x`` and the pixel size in mm."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with h5py.File(full, "r") as src:
        for i, (off, err) in enumerate(zip(TRUE_OFFSETS, MOTOR_ERROR, strict=True)):
            path = out_dir / f"part_{i}.h5"
            cols = np.s_[..., off:off + WIDTH]
            with h5py.File(path, "w") as f:
                for key in ("exchange/data", "exchange/data_white", "exchange/data_dark"):
                    f[key] = src[key][cols]
                for key in ("exchange/theta", "instrument/beam_monitor/data", "measurement/sample/name"):
                    f[key] = src[key][()]
                f["measurement/instrument/detector/pixel_size"] = PIXEL
                f["instrument/sample/x"] = 10.0 + (off + err) * PIXEL
            paths.append(read_only(path))
    return [paths[i] for i in order]


@pytest.fixture(scope="module")
def full_scan(tmp_path_factory) -> Path:
    return read_only(write_scan(tmp_path_factory.mktemp("full") / "full.h5", SPEC))


@pytest.fixture(scope="module")
def parts(full_scan, tmp_path_factory) -> list[Path]:
    """The three files, listed out of order (the middle one first) as a user may."""
    return write_parts(full_scan, tmp_path_factory.mktemp("parts"), order=(1, 0, 2))


def stitch_cfg(parts: list[Path], **extra) -> StitchConfig:
    return StitchConfig(enabled=True, inputs=[str(p) for p in parts], **extra)


def normalised(scan: RawScan, p0: int, p1: int, r0: int, r1: int) -> np.ndarray:
    """Flat/dark-corrected projections, mean references (the TomoPy formula, written out)."""
    flat = scan.flats(r0, r1).mean(axis=0)
    dark = scan.darks(r0, r1).mean(axis=0)
    return (scan.projections(p0, p1, r0, r1) - dark) / np.maximum(flat - dark, FLOOR)


def test_offsets_found_from_motor_positions_in_the_files(parts) -> None:
    # Config order is part 1, 0, 2: its offsets are 48, 0, 96 though the motors say 51, 0, 92.
    assert find_offsets(stitch_cfg(parts)) == [48, 0, 96]
    positions = [0.0, -50.0, 45.0]  # pixel units in the config, other errors (-2 px, -3 px)
    assert find_offsets(stitch_cfg(parts, positions=positions, pixel_size=1.0)) == [48, 0, 96]


def test_stitched_projections_equal_the_unsplit_ones(parts, full_scan) -> None:
    offsets = [48, 0, 96]
    with StitchedScan(parts, offsets) as scan, RawScan(full_scan) as full:
        info = scan.info
        assert (info.n_proj, info.n_rows, info.n_cols) == (SPEC.n_proj, SPEC.n_rows, SPEC.n_cols)
        assert info.theta_deg == full.info.theta_deg and info.n_flat == SPEC.n_flat
        whole = scan.projections(0, SPEC.n_proj, 0, SPEC.n_rows)
        # The overlaps hold the same detector pixels, so the blend reproduces the unsplit scan to float rounding.
        reference = normalised(full, 0, SPEC.n_proj, 0, SPEC.n_rows)
        np.testing.assert_allclose(whole, reference, rtol=2e-6, atol=1e-7)
        # The same blend as the library's stitch_block on the files' normalised blocks, which it sums one at a time.
        blocks = []
        for p in parts:
            with RawScan(p) as part:
                blocks.append(normalised(part, 0, SPEC.n_proj, 0, SPEC.n_rows))
        np.testing.assert_array_equal(whole, stitch_block(blocks, offsets))
        # Blocks of any size read as the whole does (the references are re-read per row range).
        for p0, p1, r0, r1 in [(0, 7, 3, 6), (170, 180, 0, 8), (50, 51, 7, 8), (10, 40, 3, 6)]:
            np.testing.assert_array_equal(scan.projections(p0, p1, r0, r1), whole[p0:p1, r0:r1])
        # Ones and zeros as flats and darks: the chain's flat/dark step leaves the stitched data as they are.
        np.testing.assert_array_equal(process_whole(scan, PreprocessConfig(), threads=1), whole)
        np.testing.assert_allclose(scan.i0(0, 5), full.i0(0, 5))
        scan.check_flats()


def test_wrong_offsets_are_seen_in_the_data(parts, full_scan) -> None:
    # The motor guess alone places part 1 three pixels off: the stitched data are then visibly wrong.
    with StitchedScan(parts, [51, 0, 96]) as scan, RawScan(full_scan) as full:
        err = np.abs(scan.projections(0, 20, 0, 8) - normalised(full, 0, 20, 0, 8)).max()
    assert err > 0.05


def test_misfits_are_rejected_with_the_key_named(parts, tmp_path) -> None:
    with pytest.raises(ScanError, match="edge of the search window"):
        find_offsets(stitch_cfg(parts, window=2))
    with pytest.raises(ScanError, match="leave columns"):
        StitchedScan(parts, [48, 0, 120])
    with pytest.raises(ScanError, match="stitch.positions or stitch.position_path"):
        find_offsets(stitch_cfg(parts, position_path="instrument/sample/y"))
    with pytest.raises(ConfigError, match="at least two files"):
        validate({"stitch": {"enabled": True, "inputs": [str(parts[0])]}})
    with pytest.raises(ConfigError, match="3 inputs"):
        validate({"stitch": {"enabled": True, "inputs": [str(p) for p in parts], "positions": [0, 1]}})
    base = {"stitch": {"enabled": True, "inputs": [str(p) for p in parts]}}
    with pytest.raises(ConfigError, match="config key 'input'"):
        scans(validate(base | {"input": [str(tmp_path / "other.h5")]}))
    with pytest.raises(ConfigError, match="slice_hor"):
        scans(validate(base | {"datasets": {"slice_hor": [0, 32, 1]}}))
    # Named after the first listed file; 'input' may repeat the files (as a .tori's data_file would).
    assert scans(validate(base | {"input": [str(parts[0])]})) == {"part_1": str(parts[0])}
    with pytest.raises(ScanError, match="opened by its first file"):
        open_scan(validate(base), parts[2])


@pytest.mark.slow
def test_pipeline_reconstructs_the_stitched_scan(full_scan, tmp_path) -> None:
    """The real Snakefile on the three files: offsets in the plan, chunked preprocessing, volume = phantom."""
    parts = write_parts(full_scan, tmp_path / "parts", order=(1, 0, 2))
    # 16.8 MB (none reserved for the interpreter) -> tiles of 107 projections, k = 2; 26 MB -> j = 1.
    cfg = {"stitch": {"enabled": True, "inputs": [str(p) for p in parts]}, "outdir": str(tmp_path / "out"),
           "preprocess_memory_mb": 16.8, "recon_memory_mb": 26.0, "overhead_mb": 0, "subchunks_per_job": 1,
           "threads": 1, "cleanup": False, "report": False}
    run(tmp_path, cfg)
    d = tmp_path / "out" / "part_1"
    plan = json.loads((d / "plan.json").read_text())
    assert plan["stitch_offsets"] == [48, 0, 96]
    assert plan["info"]["n_cols"] == SPEC.n_cols and plan["k"] == 2
    vol = volume(d / "part_1_recon.h5")
    truth = ground_truth(SPEC)
    assert vol.shape == truth.shape
    nrmse, gain = fit_error(vol, truth)
    assert nrmse < 0.1, nrmse
    assert 0.9 < gain < 1.1, gain
    # Every file is an input of the plan: a new motor position in the last one plans again.
    last = parts[2]
    last.chmod(0o644)
    with h5py.File(last, "r+") as f:
        f["instrument/sample/x"][()] += PIXEL
    assert "plan" in scheduled_rules(tmp_path, cfg)
