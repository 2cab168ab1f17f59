"""The PDF report: made by the real stage functions on a phantom (uint16 volume with a pyramid), rendered
with pdftoppm and read back with pypdf; and the timing arithmetic it prints, on known intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from tests.conftest import read_only
from tomosnake import config as tconfig
from tomosnake.report import pdf as report
from tomosnake.report import timings
from tomosnake.stages.combine import combine
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.stages.plan import make_plan, split
from tomosnake.stages.preprocess_chunk import process_chunk
from tomosnake.report.previews import write_previews
from tomosnake.stages.conversion_range import write_range
from tomosnake.stages.recon_chunk import recon_chunk
from tomosnake.io.scan import RawScan
from tomosnake.report.timings import Benchmark, JobRecord, summarize
from tomosnake.io.vds import stack

SPEC = PhantomSpec(n_proj=150, n_rows=10, n_cols=80, center_offset=1.5, seed=4)


def run_stages(raw: Path, d: Path, cfg: tconfig.TomoConfig):
    """The workflow's stages, called directly (what the rules' scripts do), into scan folder ``d``."""
    plan = make_plan(cfg, str(raw), "phantom")
    # Several chunks of each kind whatever the budget gives for so small a scan (any split gives the same volume).
    plan = replace(plan, proj_chunks=split(plan.shape[0], 2), sino_chunks=split(plan.shape[1], 3))
    chunks = []
    with RawScan(raw, cfg.datasets) as scan:
        for k, (p0, p1) in enumerate(plan.proj_chunks):
            chunks.append(d / "preproc" / f"chunk_{k}.h5")
            process_chunk(scan, cfg.preprocess, p0, p1, tuple(plan.tile), chunks[-1], threads=1)
    stack(chunks, d / "preproc.vds.h5", extra={"exchange/theta": plan.theta_deg})
    conv = write_range(d / "preproc.vds.h5", plan, cfg, d / "recon_range.json")
    recons = [d / "recon" / f"recon_{j}.h5" for j in range(plan.j)]
    for j, path in enumerate(recons):
        recon_chunk(d / "preproc.vds.h5", plan, j, cfg, conv, path)
    combine(recons, plan, cfg, conv, d / "phantom_recon.h5", config_path=d / "phantom_recon.yaml")
    return plan


def fake_records(d: Path, plan, t0: float) -> None:
    """Job records as the jobs write them (the JSON of `timings.install`), at known times."""
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    jobs = ["plan", *(f"preprocess_{k}" for k in range(plan.k)), "vds_merge", "conversion_range",
            *(f"recon_{j}" for j in range(plan.j)), "combine", "preprocess_99"]  # the last: not of this plan
    for i, job in enumerate(jobs):
        rec = JobRecord(job, t0 + 2 * i, t0 + 2 * i + 1.5, 0.3, 1, 150.0)
        (logs / f"{job}{timings.RECORD_SUFFIX}").write_text(json.dumps(asdict(rec)))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    import time

    base = tmp_path_factory.mktemp("report")
    raw = read_only(write_scan(base / "phantom.h5", SPEC))
    cfg = tconfig.validate({"input": [str(raw)], "memory_mb": 40, "overhead_mb": 0, "threads": 1,
                            "subchunks_per_job": 1, "recon": {"convert": {"enabled": True, "dtype": "uint16"}},
                            "output": {"pyramid": [2, 4]}})
    d = base / "out" / "phantom"
    plan = run_stages(raw, d, cfg)
    fake_records(d, plan, time.time() - 60)
    write_previews(plan, cfg, d / "preproc.vds.h5", d / "report_previews.h5")
    pdf = d / "phantom_report.pdf"
    report.write_report(plan, cfg, d / "report_previews.h5", d / "phantom_recon.h5", pdf, scan_dir=d)
    return plan, cfg, d, pdf


def page_text(pdf: Path, page: int) -> str:
    """The page's words, single-spaced (line breaks fall anywhere)."""
    out = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), str(pdf), "-"],
                         capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


def test_report_has_its_four_pages(made):
    plan, _, _, pdf = made
    assert plan.k > 1 and plan.j > 1
    assert len(PdfReader(pdf).pages) == 4
    assert "Reconstruction report: phantom" in page_text(pdf, 1)
    assert "Processing" in page_text(pdf, 2) and "Timings" in page_text(pdf, 3)
    assert "Provenance" in page_text(pdf, 4)


def test_page_one_images_are_not_blank(made, tmp_path):
    _, _, _, pdf = made
    images = [np.asarray(im.image.convert("L"), dtype=float) for im in PdfReader(pdf).pages[0].images]
    data = [im for im in images if im.shape[1] > 8]  # the colour bars are 4 px wide ramps
    assert len(data) == 7  # raw and corrected projection and sinogram, three slices
    for im in data:
        assert im.std() > 10, im.std()  # structure, not a flat grey
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")], check=True)
    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("L"), dtype=float)
    assert page.std() > 40 and (page < 200).mean() > 0.15  # a page of pictures, not of white space


def test_page_one_says_what_the_volume_is(made):
    plan, _, _, pdf = made
    text = page_text(pdf, 1)
    assert f"{plan.center:.2f} px" in text and "uint16" in text
    assert "shepp-logan phantom" in text and "phantom.h5" in text
    assert f"{SPEC.n_proj} projections x {SPEC.n_rows} rows x {SPEC.n_cols} columns" in text


def test_processing_page_lists_corrections_conversion_and_pyramid(made):
    _, _, d, pdf = made
    text = page_text(pdf, 2)
    assert "flat/dark field" in text and "normalize_dark=True" in text
    conv = json.loads((d / "recon_range.json").read_text())
    assert "Converted to uint16" in text and f"{conv['min']:.3g}" in text
    assert "/exchange/pyramid/2" in text and "/exchange/pyramid/4" in text
    assert "Voxels in the lowest bin" in text


def test_timing_page_uses_this_plans_jobs(made):
    plan, _, _, pdf = made
    text = page_text(pdf, 3)
    for stage in ("plan", "preprocess", "vds_merge", "conversion_range", "recon", "combine"):
        assert f" {stage} " in text
    n_jobs = 5 + plan.k + plan.j - 1  # preprocess_99 belongs to no job of this plan
    assert f"sum of the {n_jobs} jobs" in text
    assert "written before cleanup" in text


def test_orthogonal_slices_are_the_volumes_middle_planes_as_recorded(made):
    """The coronal and sagittal slices come from the recon chunks' records (full resolution), not from a
    read across the volume's slices; they equal the volume's own planes."""
    _, _, d, pdf = made
    with h5py.File(d / "phantom_recon.h5", "r") as f:
        sl = report.read_slices(f)
        vol = f["exchange/data"][()]
    nz, ny, nx = vol.shape
    np.testing.assert_array_equal(sl.axial, vol[nz // 2])
    np.testing.assert_array_equal(sl.coronal, vol[:, ny // 2, :])
    np.testing.assert_array_equal(sl.sagittal, vol[:, :, nx // 2])
    assert "pyramid level" not in page_text(pdf, 1)


# ----------------------------------------------------------------------------------------- timing arithmetic
def test_summary_in_the_seed_papers_terms():
    recs = [JobRecord("plan", 0, 10, 1.0, 1, 100), JobRecord("preprocess_0", 12, 20, 2.0, 2, 300),
            JobRecord("preprocess_1", 14, 22, 4.0, 2, 320), JobRecord("recon_0", 25, 30, None, 2, 500)]
    bench = {"preprocess_0": Benchmark("preprocess_0", 7.5, 20, 400.0, 10.0, 5.0)}
    s = summarize(recs, bench, raw_pixels=3_500_000, until=35)
    assert s.total_s == 35 and s.busy_s == 25 and s.idle_s == 10
    assert s.idle_fraction == pytest.approx(10 / 35)
    assert s.io_s == 7 and s.io_fraction == pytest.approx(7 / 26) and s.io_jobs == 3
    assert s.threads_peak == 4 and s.pixels_per_s == pytest.approx(1e5)
    pre = next(t for t in s.stages if t.stage == "preprocess")
    assert (pre.jobs, pre.wall_sum, pre.wall_max, pre.max_rss_mb) == (2, 15.5, 8, 400.0)
    recon = next(t for t in s.stages if t.stage == "recon")
    assert recon.io_s is None and recon.read_mb is None


def test_union_and_concurrency():
    assert timings.union_seconds([(0, 2), (1, 3), (5, 6)]) == 4
    assert timings.peak_concurrency([(0, 2, 1), (2, 3, 5), (1, 2.5, 2)]) == 7


@pytest.mark.parametrize("fail", [False, True])
def test_a_job_records_its_hdf5_io(tmp_path, fail):
    log = tmp_path / "recon_3.log"
    code = (f"import h5py, numpy as np\nfrom tomosnake.report import timings\n"
            f"timings.install({str(log)!r}, 3)\n"
            f"with h5py.File({str(tmp_path / 'x.h5')!r}, 'w') as f:\n"
            f"    f['d'] = np.zeros((200, 1000))\n    f['d'][:] = 1.0\n    f['d'][:, :10]\n"
            + ("1 / 0\n" if fail else ""))
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, check=False)
    rec = JobRecord(**json.loads(timings.record_path(log).read_text()))
    assert rec.job == "recon_3" and rec.threads == 3 and rec.start < rec.end
    assert 0 < rec.io_s < rec.wall and rec.max_rss_mb > 10
    assert rec.ok is (not fail)


def test_a_job_records_its_start_up_and_named_phases(tmp_path):
    log = tmp_path / "plan.log"
    code = (f"import time\nfrom tomosnake.report import timings\ntimings.install({str(log)!r})\n"
            f"with timings.phase('center'):\n    time.sleep(0.2)\n"
            f"with timings.phase('center'):\n    time.sleep(0.1)\n")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    rec = JobRecord(**json.loads(timings.record_path(log).read_text()))
    assert set(rec.phases) == {"startup", "center"}
    assert 0.3 <= rec.phases["center"] < rec.wall  # both blocks, added
    assert 0 < rec.phases["startup"] < rec.wall - rec.phases["center"]  # interpreter and imports, before install


def test_resolution_is_plotted_with_its_crossing(made):
    """The FRC of the half-data reconstructions (computed by conversion_range) is in the report."""
    _, _, d, pdf = made
    res = json.loads((d / "recon_range.json").read_text())["frc"]
    assert len(res["freq"]) == len(res["frc"]) == len(res["threshold"]) == 41 and res["rows"] == [4, 5]
    text = page_text(pdf, 2)
    assert "Resolution" in text and "1/2-bit threshold" in text
    if res["crossing"] is None:  # this phantom's halves agree up to Nyquist
        assert "resolution 2 px or better" in text
    else:
        assert f"{res['resolution_px']:.2f} px" in text


def test_a_tori_asking_for_tomopys_gridrec_is_told_what_differs(made, tmp_path):
    """The report names the backend; when a .tori named gridrec and the default backend ran, it says that this is
    not TomoPy's own gridrec, and why the slices differ."""
    plan, cfg, d, pdf = made
    assert "Not TomoPy's gridrec" not in page_text(pdf, 2) and "gridrec / gridrec" in page_text(pdf, 2)
    from_tori = cfg.model_copy(update={"tori": "scan.tori"})
    told = tmp_path / "tori_report.pdf"
    report.write_report(plan, from_tori, d / "report_previews.h5", d / "phantom_recon.h5", told, scan_dir=d)
    assert "not TomoPy's own gridrec, which the .tori named" in page_text(told, 1)
    text = page_text(told, 2)
    assert "Not TomoPy's gridrec" in text and "half a pixel" in text and "recon.backend: tomopy" in text
