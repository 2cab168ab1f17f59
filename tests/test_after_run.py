"""After a finished run, as a user goes on (issue 23, items 4 and 6): trial series of centres and tilts, and
Snakemake's own HTML report, through the real workflow, with only the base install's packages importable."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import workflow
from tests.conftest import REPO, read_only
from tomosnake.phantom import PhantomSpec, write_scan

pytestmark = pytest.mark.slow

SPEC = PhantomSpec(n_proj=90, n_rows=12, n_cols=64, center_offset=1.5, seed=5)


def base_distributions() -> set[str]:
    """The distributions `pip install .` brings: pyproject's dependencies and theirs, without any extra of ours."""
    todo = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.distribution(req.name).requires or []
        except metadata.PackageNotFoundError:
            continue  # a dependency for another platform or Python
        for line in requires:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (*req.extras, "")):
                todo.append(dep)
    return {name for name, _ in seen} | {"tomosnake"}


@pytest.fixture(scope="module")
def base_env(tmp_path_factory) -> dict[str, str]:
    """An environment in which every module of a distribution outside the base install fails to import (a
    `sitecustomize` on PYTHONPATH), as in a fresh `pip install .`: e.g. zarr (the [output] extra) and pytest;
    tifffile and pygments (pytest's dependency) were such before they became base dependencies."""
    base = base_distributions()
    blocked = sorted(top for top, dists in metadata.packages_distributions().items()
                     if not any(canonicalize_name(d) in base for d in dists) and top.isidentifier())
    assert "zarr" in blocked and "pytest" in blocked  # the test env has both; neither is a base package
    d = tmp_path_factory.mktemp("base_install")
    (d / "sitecustomize.py").write_text(f'''import sys
BLOCKED = {set(blocked)!r}


class NotInBaseInstall:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the base install)", name=name)
        return None


sys.meta_path.insert(0, NotInBaseInstall())
''')
    return {"PYTHONPATH": str(d)}


def _config(scan: Path, outdir: Path, **extra) -> dict:
    # outlier removal reads rows around the ones it keeps: the trial after cleanup pre-processes with that overlap
    return {"input": [str(scan)], "outdir": str(outdir), "memory_mb": 19, "overhead_mb": 0, "subchunks_per_job": 1,
            "threads": 1, "preprocess": {"outlier": {"enabled": True}}, "center_try": {"width": 1.0, "step": 0.5},
            **extra}


def _tiffs(d: Path) -> dict[str, np.ndarray]:
    import tifffile

    return {p.name: tifffile.imread(p) for p in sorted(d.glob("*.tiff"))}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, base_env) -> tuple[Path, dict, dict[str, np.ndarray]]:
    """A run without cleanup, its trial series from the pre-processed data; then cleanup: (workdir, config,
    the series)."""
    work = tmp_path_factory.mktemp("after_run")
    scan = read_only(write_scan(work / "phantom.h5", SPEC))
    cfg = _config(scan, work / "out", cleanup=False)
    workflow.run(work, cfg, "all", "try_center", env=base_env)
    scan_dir = work / "out" / "phantom"
    assert (scan_dir / "preproc.vds.h5").exists()
    series = _tiffs(scan_dir / "try_center")
    shutil.rmtree(scan_dir / "try_center")
    cfg["cleanup"] = True
    workflow.run(work, cfg, env=base_env)
    assert (scan_dir / "cleanup.done").exists() and not (scan_dir / "preproc.vds.h5").exists()
    return work, cfg, series


def test_try_center_after_cleanup_leaves_the_run_finished(finished, base_env) -> None:
    """try_center after cleanup pre-processes only the rows it needs, from the raw file: the same series as
    from the run's pre-processed data, no pre-processed file recreated, and the run's command has nothing to do
    (before the fix it recreated preproc.vds.h5, after which conversion_range, recon_chunk, combine, report and
    cleanup ran again)."""
    work, cfg, series = finished
    scan_dir = work / "out" / "phantom"
    proc = workflow.run(work, cfg, "try_center", env=base_env)
    assert not re.search(r"rule (preprocess_chunk|vds_merge)", proc.stderr + proc.stdout)
    assert not (scan_dir / "preproc.vds.h5").exists() and not (scan_dir / "preproc").exists()
    again = _tiffs(scan_dir / "try_center")
    assert list(again) == list(series) and len(series) == 5
    for name, img in series.items():
        np.testing.assert_array_equal(again[name], img, err_msg=name)
    assert workflow.nothing_to_do(work, cfg)


def test_try_lamino_after_cleanup_leaves_the_run_finished(tmp_path, base_env) -> None:
    """The same for a laminography scan's two trial series, with the base install only."""
    from tomosnake.phantom_lamino import LaminoSpec
    from tomosnake.phantom_lamino import write_scan as write_lamino

    spec = LaminoSpec(angle=20.0, n_proj=90, seed=2)
    scan = read_only(write_lamino(tmp_path / "flat_sample.h5", spec))
    cfg = {"input": [str(scan)], "outdir": str(tmp_path / "out"), "memory_mb": 600, "overhead_mb": 300,
           "threads": 1, "report": False,
           "recon": {"center": spec.center, "lamino": {"enabled": True, "angle": spec.angle, "height": 8}},
           "center_try": {"width": 0.5, "step": 0.5}, "lamino_try": {"width": 0.5, "step": 0.5}}
    workflow.run(tmp_path, cfg, env=base_env)
    scan_dir = tmp_path / "out" / "flat_sample"
    assert (scan_dir / "cleanup.done").exists()
    workflow.run(tmp_path, cfg, "try_center", "try_lamino", env=base_env)
    assert [p.name for p in sorted((scan_dir / "try_lamino").glob("*.tiff"))] == [
        "lamino_019.50.tiff", "lamino_020.00.tiff", "lamino_020.50.tiff"]
    assert len(list((scan_dir / "try_center").glob("*.tiff"))) == 3
    assert not (scan_dir / "preproc.vds.h5").exists()
    assert workflow.nothing_to_do(tmp_path, cfg)


def _report_results(html: str) -> dict:
    """The results Snakemake's HTML report embeds: {path: {caption, mime_type, data_uri, ...}}."""
    import json

    return json.loads(re.search(r"^\s*var results = (\{.*\})\s*;?\s*$", html, re.M).group(1))


def test_snakemake_report_holds_the_pdf_previews_and_statistics(finished, base_env) -> None:
    """`snakemake --report` after a run (with the base install's pygments) embeds the PDF report, the seven
    previews and the volume's statistics, each with its caption, and the workflow's description."""
    import base64
    import io

    from PIL import Image

    work, cfg, _ = finished
    out = work / "snakemake_report.html"
    workflow.run(work, cfg, "--report", str(out), env=base_env)
    html = out.read_text()
    assert "tomosnake reconstructs synchrotron X-ray tomography scans" in html  # report/workflow.rst
    results = {Path(k).name: v for k, v in _report_results(html).items()}

    def data(name: str) -> bytes:
        return base64.b64decode(results[name]["data_uri"].partition("base64,")[2])

    scan_dir = work / "out" / "phantom"
    assert data("phantom_report.pdf") == (scan_dir / "phantom_report.pdf").read_bytes()
    assert "reconstruction report (PDF)" in results["phantom_report.pdf"]["caption"]
    pngs = sorted(n for n in results if n.endswith(".png"))
    assert pngs == ["1_raw_projection.png", "2_corrected_projection.png", "3_raw_sinogram.png",
                    "4_corrected_sinogram.png", "5_axial_slice.png", "6_coronal_slice.png", "7_sagittal_slice.png"]
    axial = np.asarray(Image.open(io.BytesIO(data("5_axial_slice.png"))))
    assert axial.shape == (SPEC.n_cols, SPEC.n_cols) and axial.std() > 10  # a slice, not a blank
    assert all("Previews of the scan" in results[n]["caption"] for n in pngs)
    stats = data("phantom_stats.html").decode()
    assert "Volume statistics" in stats and f"{SPEC.n_rows} x {SPEC.n_cols} x {SPEC.n_cols}" in stats
    assert "Statistics of the reconstructed volume" in results["phantom_stats.html"]["caption"]
    assert workflow.nothing_to_do(work, cfg)
