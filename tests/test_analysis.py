"""The analysis stage (tomosnake.analysis): segmentation and objects counted once across slabs, on bead packs.

The stage's own tests run on a volume file written here (voxelised beads plus noise, with the histogram
combine records); the workflow tests scan bead-pack phantoms, reconstruct them with the workflow and
compare the counts and fractions with the beads' truth.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from pypdf import PdfReader
from scipy import ndimage

from tests.conftest import read_only
from tests.workflow import nothing_to_do, run
from tomosnake import config as tconfig
from tomosnake.analysis import objects, segment
from tomosnake.analysis.layout import AnalysisError, make_layout
from tomosnake.io.volume_stats import HIST_BINS, histogram_edges
from tomosnake.phantom import write_scan
from tomosnake.phantom_beads import bead_pack, spec, truth
from tomosnake.stages.analysis_merge import analysis_merge
from tomosnake.stages.analyze_chunk import analyze_chunk
from tomosnake.stages.combine import HIST_PATH

N = 64  # voxels a side
RADII = (4.0, 7.0)


# ---------------------------------------------------------------------------------------- the stage alone
def _volume_file(path: Path, vol: np.ndarray) -> Path:
    """A volume file as combine writes it, as far as the analysis reads it: the data and the histogram."""
    with h5py.File(path, "w") as f:
        f["exchange/data"] = vol
        edges = histogram_edges(vol.dtype, vol.ravel())
        f[HIST_PATH] = np.histogram(vol, HIST_BINS, (edges[0], edges[-1]))[0]
        f[HIST_PATH + "_edges"] = edges
    return path


def _analyse(volume: Path, work: Path, analysis: dict, budget_mb: float,
             threads: int = 2) -> tuple[int, dict, np.ndarray, np.ndarray]:
    """(slabs, JSON, phases, objects) of the stage's jobs run one after the other, as the workflow runs them."""
    cfg = tconfig.validate({"memory_mb": 1000, "overhead_mb": 0, "analysis_memory_mb": budget_mb,
                            "analysis": {"enabled": True, **analysis}})
    with h5py.File(volume, "r") as f:
        lay = make_layout(f["exchange/data"].shape, cfg)
    chunks = [work / f"chunk_{j}.h5" for j in range(len(lay.jobs))]
    for j, path in enumerate(chunks):
        analyze_chunk(volume, lay, j, cfg, path, threads=threads)
    result = analysis_merge(chunks, volume, lay, cfg, work / "labels.h5", work / "a.json", work / "o.csv", "s")
    with h5py.File(work / "labels.h5", "r") as f:
        return len(lay.units), result, f["exchange/data"][()], f["exchange/objects"][()]


@pytest.fixture(scope="module")
def noisy_beads(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Touching beads, voxelised, with Gaussian noise (sd 0.25 of the contrast): the file and the truth."""
    t = truth(spec(N, bead_pack(N, RADII, 40, seed=3, touching=True)))
    vol = (t + np.random.default_rng(0).normal(0, 0.25, t.shape)).astype(np.float32)
    return _volume_file(tmp_path_factory.mktemp("vol") / "vol.h5", vol), t


@pytest.mark.parametrize("budget_mb", [1.5, 3.0, 5.0])
def test_slabs_label_like_the_whole_volume(noisy_beads, tmp_path, budget_mb):
    """Components over slabs are scipy's labels of the whole thresholded volume, voxel for voxel: objects that
    cross slab faces are joined once, numbered as one labelling of the whole volume numbers them."""
    volume, _ = noisy_beads
    slabs, result, phases, labels = _analyse(volume, tmp_path, {"smooth": 1.0}, budget_mb)
    assert slabs > 1
    whole, n = ndimage.label(phases == 1)
    assert result["objects"]["count"] == n
    np.testing.assert_array_equal(labels, whole)
    _, _, phases_one, _ = _analyse(volume, tmp_path / "one", {"smooth": 1.0}, 1000)
    np.testing.assert_array_equal(phases, phases_one)  # the smoothing's halo: same phases as one slab


@pytest.mark.parametrize("shape, sigma", [((20, 6, 6), 3.0), ((20, 100, 30), 3.0), ((12, 9, 50), 2.5),
                                          ((30, 40, 40), 0.0)])
def test_phases_are_scipys_whole_array_filter_and_threshold(shape, sigma):
    """Blocks of rows in threads, thinner or thicker than the filter's radius: scipy's Gaussian of the whole
    array, thresholded (skimage's convention: above the threshold is the brighter phase)."""
    v = np.random.default_rng(1).random(shape).astype(np.float32)
    smooth = ndimage.gaussian_filter(v, sigma, mode="reflect", truncate=4.0) if sigma else v
    th = [float(t) for t in np.percentile(smooth, [40, 60])]
    for threads in (1, 2, 4):
        phases = segment.phase_labels(v, sigma, (2, 3), th, threads)
        np.testing.assert_array_equal(phases, ((smooth > th[0]).astype(np.uint8) + (smooth > th[1]))[2:-3])


def test_threads_change_nothing(noisy_beads, tmp_path):
    """The rows each thread smooths follow the threads; the phases and labels do not."""
    volume, _ = noisy_beads
    one = _analyse(volume, tmp_path / "1", {"smooth": 1.5}, 3.0, threads=1)
    three = _analyse(volume, tmp_path / "3", {"smooth": 1.5}, 3.0, threads=3)
    np.testing.assert_array_equal(one[2], three[2])
    np.testing.assert_array_equal(one[3], three[3])


def test_watershed_over_slabs_equals_one_slab(noisy_beads, tmp_path):
    volume, t = noisy_beads
    ws = {"smooth": 1.0, "watershed": True, "particle_radius": RADII[1]}
    one = _analyse(volume, tmp_path / "one", ws, 1000)
    for budget in (18.0, 22.0):
        many = _analyse(volume, tmp_path / str(budget), ws, budget)
        assert many[0] > 2
        assert many[1]["objects"] == one[1]["objects"]
        np.testing.assert_array_equal(many[3], one[3])
    assert ndimage.label(t)[1] < 20  # the beads touch: components alone count far fewer than 40
    assert abs(one[1]["objects"]["count"] - 40) <= 2


def test_face_pairs_join_best_overlaps_only():
    below = np.array([[1, 1, 1, 2, 2], [1, 1, 2, 2, 2]])
    above = np.array([[3, 3, 3, 3, 4], [3, 3, 3, 4, 4]])
    assert objects.face_pairs(below, above, mutual_best=False).tolist() == [[1, 3], [2, 3], [2, 4]]
    assert objects.face_pairs(below, above, mutual_best=True).tolist() == [[1, 3], [2, 4]]


def test_histogram_too_narrow_for_the_phases_is_one_line():
    counts, edges = np.zeros(256, np.int64), np.linspace(0, 1, 257)
    counts[[10, 200]] = 1000
    assert len(segment.thresholds(counts, edges, 2)) == 1
    with pytest.raises(AnalysisError, match=r"^the histogram: 2 non-empty bins cannot hold config key "
                                            r"'analysis.phases' 3$"):
        segment.thresholds(counts, edges, 3)


def test_config_refuses_an_object_phase_beyond_the_phases():
    with pytest.raises(tconfig.ConfigError, match="config key 'analysis': .*object_phase 3 is not one of the 3"):
        tconfig.validate({"analysis": {"phases": 3, "object_phase": 3}})


# ------------------------------------------------------------------------------------------- the workflow
def _config(scan: Path, outdir: Path, **analysis) -> dict:
    budget = analysis.pop("budget_mb", 2.0)
    return {"input": [str(scan)], "outdir": str(outdir), "memory_mb": 200, "overhead_mb": 0, "threads": 2,
            "cleanup": False, "analysis_memory_mb": budget, "analysis": {"enabled": True, "smooth": 1.0, **analysis}}


def _outputs(outdir: Path) -> tuple[dict, np.ndarray]:
    scan_dir = outdir / "beads"
    with h5py.File(scan_dir / "beads_labels.h5", "r") as f:
        labels = f["exchange/objects"][()]
    return json.loads((scan_dir / "beads_analysis.json").read_text()), labels


def _scan(tmp_path_factory, touching: bool) -> tuple[Path, list, np.ndarray]:
    beads = bead_pack(N, RADII, 40, seed=3, touching=touching)
    s = spec(N, beads)
    path = read_only(write_scan(tmp_path_factory.mktemp("raw") / "beads.h5", s))
    return path, beads, truth(s)


@pytest.fixture(scope="module")
def separate_beads(tmp_path_factory):
    return _scan(tmp_path_factory, touching=False)


@pytest.fixture(scope="module")
def touching_beads(tmp_path_factory):
    return _scan(tmp_path_factory, touching=True)


@pytest.mark.slow
def test_separate_beads_counted_exactly(separate_beads, tmp_path):
    scan, beads, t = separate_beads
    assert ndimage.label(t)[1] == len(beads) == 40
    cut = sum(1 for b in beads if abs(b.z) + b.r > (N - 1) / 2)  # beads the volume's first or last slice cuts
    assert cut >= 3
    out = tmp_path / "out"
    run(tmp_path, _config(scan, out))
    result, labels = _outputs(out)
    logs = sorted(p.name for p in (out / "beads" / "logs").glob("analyze_*.log"))
    assert len(logs) >= 3  # several analyze_chunk jobs
    assert result["objects"]["count"] == len(beads)
    assert abs(result["phases"][1]["fraction"] - t.mean()) < 0.01
    assert [p["label"] for p in result["phases"]] == [0, 1]
    assert result["objects"]["touching_edge"] == cut
    rows = (out / "beads" / "beads_objects.csv").read_text().splitlines()
    assert rows[0].startswith("id,volume_voxels,equivalent_diameter_voxels") and len(rows) == 41
    assert sorted(int(r.split(",")[1]) for r in rows[1:]) == sorted(result["objects"]["volumes_voxels"])
    text = "".join(p.extract_text() for p in PdfReader(out / "beads" / "beads_report.pdf").pages)
    assert "Analysis" in text and "40 objects" in text
    # one slab per job (the budget holds the whole volume): the same labels, the same numbers
    run(tmp_path, _config(scan, out, budget_mb=100.0))
    one, labels_one = _outputs(out)
    assert len(list((out / "beads" / "logs").glob("analyze_*.log"))) == len(logs)  # logs of the earlier jobs
    assert one == result
    np.testing.assert_array_equal(labels_one, labels)


@pytest.mark.slow
def test_touching_beads_split_by_the_watershed(touching_beads, tmp_path):
    scan, beads, t = touching_beads
    assert ndimage.label(t)[1] < 20
    out = tmp_path / "out"
    ws = {"watershed": True, "particle_radius": RADII[1]}
    run(tmp_path, _config(scan, out, budget_mb=18.0, **ws))
    result, labels = _outputs(out)
    assert abs(result["objects"]["count"] - len(beads)) <= 0.05 * len(beads)
    assert abs(result["phases"][1]["fraction"] - t.mean()) < 0.01
    run(tmp_path, _config(scan, out, budget_mb=200.0, **ws))
    one, labels_one = _outputs(out)
    assert one == result
    np.testing.assert_array_equal(labels_one, labels)


@pytest.mark.slow
def test_pyramid_level_and_labels_as_ome_zarr(separate_beads, tmp_path):
    """Level 1 of the pyramid; then, after cleanup, a new analysis parameter reruns the analysis alone."""
    import zarr

    scan, beads, t = separate_beads
    out = tmp_path / "out"
    cfg = _config(scan, out, level=1, smooth=0.0) | {"output": {"pyramid": [2], "ome_zarr": True}, "cleanup": True}
    run(tmp_path, cfg)
    assert nothing_to_do(tmp_path, cfg)
    cfg["analysis"]["phases"] = 3
    dry = run(tmp_path, cfg, "-n").stdout
    assert set(re.findall(r"^(\w+)\s+\d+$", dry, re.M)) == {"analyze_chunk", "analysis_merge", "labels_ome_zarr",
                                                            "report", "cleanup", "all", "total"}
    cfg["analysis"]["phases"] = 2
    result, labels = _outputs(out)
    assert result["level"] == 1 and result["factor"] == 2 and result["shape"] == [N // 2] * 3
    assert abs(result["phases"][1]["fraction"] - t.mean()) < 0.01
    assert result["objects"]["count"] == len(beads)
    image = zarr.open_group(str(out / "beads" / "beads_labels.ome.zarr"), mode="r")
    np.testing.assert_array_equal(image["0"][:], h5py.File(out / "beads" / "beads_labels.h5")["exchange/data"][()])


def _refused(tmp_path: Path, cfg: dict) -> str:
    proc = run(tmp_path, cfg, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("tomosnake:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-2000:]
    assert not (Path(cfg["outdir"]) / "beads" / "plan.json").exists()  # nothing ran
    return lines[0]


@pytest.mark.slow
def test_bad_analysis_input_is_one_line_before_anything_runs(separate_beads, tmp_path):
    scan = separate_beads[0]
    out = tmp_path / "out"
    line = _refused(tmp_path, _config(scan, out, level=2) | {"output": {"pyramid": [2]}})
    assert "config key 'analysis.level': 2, but the volume's pyramid has levels 0 to 1" in line
    line = _refused(tmp_path, _config(scan, out, budget_mb=0.5))
    assert "config key 'analysis_memory_mb': 0.5 MB holds no slab of the analysis" in line
    # a volume already there (analysis switched on after the reconstruction) whose histogram has two values
    volume = out / "beads" / "beads_recon.h5"
    volume.parent.mkdir(parents=True)
    _volume_file(volume, np.repeat([0.0, 1.0], N**3 // 2).reshape(N, N, N).astype(np.float32))
    line = _refused(tmp_path, _config(scan, out, phases=3))
    assert f"{volume} (/process/tomosnake/histogram): 2 non-empty bins cannot hold config key 'analysis.phases' 3" \
        in line


@pytest.mark.slurm
def test_analysis_jobs_on_slurm(separate_beads, tmp_path):
    """The analysis's jobs as SLURM jobs of their own (profile slurm-test), with the same count as locally."""
    from tests.test_slurm import NO_CONTROLLER, slurm_jobs, snakemake_slurm

    if NO_CONTROLLER is not None:
        pytest.skip(NO_CONTROLLER)
    scan, beads, _ = separate_beads
    out = tmp_path / "out"
    cfg = _config(scan, out, budget_mb=4.0) | {"report": False, "recon_memory_mb": 200}
    proc = snakemake_slurm(tmp_path, cfg)
    assert proc.returncode == 0, proc.output[-3000:]
    result, _ = _outputs(out)
    assert result["objects"]["count"] == len(beads)
    jobs = [j for j in slurm_jobs(proc) if j.rule.startswith("analy")]  # SLURM's accounting records
    assert all(j.state == "COMPLETED" for j in jobs)
    rules = [j.rule for j in jobs]
    assert rules.count("analyze_chunk") >= 2 and rules.count("analysis_merge") == 1
