"""The PDF report says what was done, once (issue 23, item 7): made by the real stage functions on phantoms, read
back as text. A scan with phase retrieval, I0, stripe removal and a float16 volume, and a stitched scan."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
from pypdf import PdfReader

from tests.conftest import read_only
from tests.test_stitched_scan import SPEC as STITCH_SPEC
from tests.test_stitched_scan import write_parts
from tomosnake import config as tconfig
from tomosnake.io.stitched_scan import open_scan
from tomosnake.io.vds import stack
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.report import pdf as report
from tomosnake.report.previews import write_previews
from tomosnake.stages.combine import combine
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.plan import make_plan, split
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.stages.recon_chunk import recon_chunk

# 400 projections: the raw sinogram shows every 2nd (at most 360 are read)
SPEC = PhantomSpec(n_proj=400, n_rows=8, n_cols=64, center_offset=1.0, seed=7)
PHASE = {"enabled": True, "delta_beta": 500.0, "energy": 25.0, "dist": 20.0, "pixel_size": 0.00065}


def make_report(raw: Path, d: Path, cfg: tconfig.TomoConfig, name: str) -> tuple[Path, object]:
    """The workflow's stages called directly, as the rules' jobs call them, then the report."""
    plan = make_plan(cfg, str(raw), name)
    plan = replace(plan, proj_chunks=split(plan.shape[0], 2), sino_chunks=split(plan.shape[1], 2))
    chunks = [d / "preproc" / f"chunk_{k}.h5" for k in range(plan.k)]
    with open_scan(cfg, raw, plan.stitch_offsets) as scan:
        for k, (p0, p1) in enumerate(plan.proj_chunks):
            process_chunk(scan, cfg.preprocess, p0, p1, tuple(plan.tile), chunks[k], threads=1)
    vds = d / "preproc.vds.h5"
    stack(chunks, vds, extra={"exchange/theta": plan.theta_deg})
    conv = write_range(vds, plan, cfg, d / "recon_range.json")
    recons = [d / "recon" / f"recon_{j}.h5" for j in range(plan.j)]
    for j, path in enumerate(recons):
        recon_chunk(vds, plan, j, cfg, conv, path)
    volume = d / f"{name}_recon.h5"
    combine(recons, plan, cfg, conv, volume, config_path=d / f"{name}_recon.yaml")
    write_previews(plan, cfg, vds, d / "report_previews.h5")
    pdf = d / f"{name}_report.pdf"
    report.write_report(plan, cfg, d / "report_previews.h5", volume, pdf, scan_dir=d)
    return pdf, plan


def page_text(pdf: Path, page: int) -> str:
    """A page's words, single-spaced (pypdf)."""
    return " ".join(PdfReader(pdf).pages[page - 1].extract_text().split())


def not_applied(text: str) -> str:
    return re.search(r"Not applied: (.*?)\.", text).group(1)


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    base = tmp_path_factory.mktemp("truth")
    raw = read_only(write_scan(base / "phantom.h5", SPEC))
    cfg = tconfig.validate({
        "input": [str(raw)], "memory_mb": 200, "overhead_mb": 0, "threads": 1, "subchunks_per_job": 1,
        "preprocess": {"phase": PHASE, "i0": {"enabled": True, "source": "air", "air_columns": 4},
                       "stripe": {"enabled": True, "function": "profile", "kwargs": {"size": 5}}},
        "recon": {"convert": {"enabled": True, "dtype": "float16"}}})
    return make_report(raw, base / "out" / "phantom", cfg, "phantom")


def test_each_correction_is_applied_with_its_parameters_or_not_applied(corrected) -> None:
    """Phase retrieval, I0 and stripe removal appear once, as applied, with their parameters (before: in the
    table with '-' for parameters and again under 'Not applied')."""
    pdf, _ = corrected
    text = page_text(pdf, 2)
    off = not_applied(text)
    for title in ("phase retrieval", "I0", "stripe removal", "flat/dark field"):
        assert title in text and title not in off, (title, off)
    assert ("phase retrieval (Paganin) pre-processing delta/beta = 500, energy 25 keV, distance 20 cm, pixel size "
            "6.5 µm") in text
    assert "air: 4 columns at each side" in text
    assert "stripe removal reconstruction, whole sinograms profile size=5" in text
    assert "outlier removal" in off and "crop" in off and "-log" not in off  # -log ran in the reconstruction


def test_float16_volume_is_described_as_a_plain_cast(corrected) -> None:
    pdf, _ = corrected
    text = page_text(pdf, 2)
    assert "Stored as float16: a plain cast of the reconstructed values" in text
    assert "Converted to" not in text and "mode std" not in text


def test_pixel_size_from_the_phase_config_when_the_file_has_none(corrected) -> None:
    """The phantom's file gives a pixel size without a unit: the report takes phase retrieval's, and the FRC's
    resolution is in micrometres too."""
    pdf, _ = corrected
    one, two = page_text(pdf, 1), page_text(pdf, 2)
    assert "Pixel size 6.5 µm (preprocess.phase.pixel_size; the raw file gives 1 without a unit)" in one
    assert "not given in the raw file" not in one
    assert "pixel size unknown" not in two
    assert "µm at 6.5 µm per pixel" in two  # the FRC's resolution (crossing or Nyquist) in micrometres
    with h5py.File(pdf.parent / "phantom_recon.h5", "r") as f:
        assert f["exchange/data"].attrs["pixel_size_um"] == pytest.approx(6.5)


def test_ordinal_of_the_raw_sinogram_step(corrected) -> None:
    pdf, _ = corrected
    text = page_text(pdf, 1)
    assert "every 2nd projection" in text and "2th" not in text


@pytest.mark.parametrize("n, word", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                     (13, "13th"), (21, "21st"), (22, "22nd"), (101, "101st"), (111, "111th")])
def test_ordinal(n: int, word: str) -> None:
    assert report.ordinal(n) == word


# ------------------------------------------------------------------------------------------------- stitched
@pytest.fixture(scope="module")
def stitched(tmp_path_factory):
    base = tmp_path_factory.mktemp("stitched")
    full = read_only(write_scan(base / "full.h5", STITCH_SPEC))
    parts = write_parts(full, base / "parts", order=(1, 0, 2))
    cfg = tconfig.validate({"stitch": {"enabled": True, "inputs": [str(p) for p in parts]}, "memory_mb": 200,
                            "overhead_mb": 0, "threads": 1, "subchunks_per_job": 1})
    pdf, plan = make_report(parts[0], base / "out" / "part_1", cfg, "part_1")
    return pdf, plan, parts


def test_stitched_scan_has_a_stitching_section(stitched) -> None:
    """Every input with its motor and refined offset, and the overlaps (offsets: motors 51, 0, 92; refined
    48, 0, 96 px, files of 64 columns)."""
    pdf, plan, _ = stitched
    text = page_text(pdf, 2)
    assert "Stitching" in text
    assert "part_0.h5 64 px 0.0 px 0 px +0.0 px" in text
    assert "part_1.h5 64 px 51.0 px 48 px -3.0 px" in text
    assert "part_2.h5 64 px 92.0 px 96 px +4.0 px" in text
    assert "part_0.h5 / part_1.h5: 16 px; part_1.h5 / part_2.h5: 16 px" in text


def test_stitched_scan_names_every_input_and_shows_the_joined_projection(stitched) -> None:
    pdf, plan, parts = stitched
    one = page_text(pdf, 1)
    prov = " ".join(page_text(pdf, i + 1) for i in range(len(PdfReader(pdf).pages))).partition("Provenance")[2]
    assert "Raw files part_1.h5, part_0.h5, part_2.h5" in one
    assert "3 files of 180 projections x 8 rows x 64, 64, 64 columns" in one and "joined to 160 columns" in one
    assert "Stitched raw projection 0" in one
    with h5py.File(pdf.parent / "report_previews.h5", "r") as f:
        assert tuple(f["raw_proj"].attrs["full_shape"]) == (8, 160)  # not the first file's 64 columns
    for p in parts:
        assert p.name in prov
    from tomosnake import provenance

    with h5py.File(pdf.parent / "part_1_recon.h5", "r") as f:
        listed = [Path(fp["path"]).name for fp in provenance.read(f)["input_fingerprint"]]
    assert listed == ["part_1.h5", "part_0.h5", "part_2.h5"]
