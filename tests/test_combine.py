"""combine: the volume file (physical and virtual), its block-mean pyramid, statistics and provenance;
the OME-Zarr and TIFF copies; the input fingerprint. Volumes are built from known arrays, so every
value read back is compared with the array it came from."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tomosnake import config as tconfig
from tomosnake import provenance
from tomosnake.stages.combine import (
    chunk_shape,
    combine,
    pyramid_levels,
    read_histogram,
    slab_depth,
)
from tomosnake.io import volume_stats
from tomosnake.io.volume_stats import SAMPLE_MAX, ChunkStats, join, steps
from tomosnake.stages.export import write_ome_zarr, write_tiff_stack
from tomosnake.io.fingerprint import SAMPLE_BYTES, fingerprint, sha256_file
from tomosnake.stages.plan import Plan, split
from tomosnake.io.pyramid import Pyramid, level_shape
from tomosnake.io.scan import RawScan


def block_means(vol: np.ndarray, f: int) -> np.ndarray:
    """Reference: the mean of every (partial) f x f x f block, by explicit loops."""
    out = np.empty(level_shape(vol.shape, f))
    for i, j, k in itertools.product(*map(range, out.shape)):
        out[i, j, k] = vol[i * f:(i + 1) * f, j * f:(j + 1) * f, k * f:(k + 1) * f].astype(np.float64).mean()
    return out


def make_plan(raw: Path, n_slices: int, width: int, j: int) -> Plan:
    with RawScan(raw) as scan:
        info = scan.info
    from dataclasses import asdict

    return Plan(scan="vol", input=str(raw), info=asdict(info), crop=(0, n_slices, 0, width),
                proj_chunks=[(0, info.n_proj)], tile=(info.n_proj, n_slices), sino_chunks=split(n_slices, j),
                slices_per_load=2, recon_width=width, center=(width - 1) / 2, center_method="config",
                log_applied=False, memory_mb=64)


def write_chunks(vol: np.ndarray, plan: Plan, folder: Path) -> list[Path]:
    """The volume as reconstruction chunk files, as recon_chunk writes them (one slice per HDF5 chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for j, (r0, r1) in enumerate(plan.sino_chunks):
        p = folder / f"recon_{j}.h5"
        with h5py.File(p, "w") as f:
            f.create_dataset("exchange/data", data=vol[r0:r1], chunks=(1, *vol.shape[1:]))
            stats = ChunkStats(vol.shape)
            for z in range(r0, r1, 2):  # loads of two slices
                stats.add(z, vol[z:min(z + 2, r1)])
            stats.write(f)
        paths.append(p)
    return paths


def config(memory_mb: float = 64, **output) -> tconfig.TomoConfig:
    """A physical volume unless ``output`` says otherwise."""
    return tconfig.validate({"output": {"combine": "physical"} | output, "memory_mb": memory_mb, "overhead_mb": 0})


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """Odd sizes on every axis, so every level has partial blocks."""
    rng = np.random.default_rng(5)
    return rng.normal(1.0, 0.3, (21, 37, 37)).astype(np.float32)


# ------------------------------------------------------------------------------------------- pyramid
@pytest.mark.parametrize("depth", [1, 4, 5, 64])
def test_streamed_pyramid_equals_block_means(volume, depth):
    factors = [2, 3, 4, 8]
    pyr = Pyramid(volume.shape, factors, volume.dtype, depth=3)
    levels = {f: np.full(level_shape(volume.shape, f), np.nan, np.float32) for f in factors}
    for z0 in range(0, volume.shape[0], depth):
        for f, lz0, block in pyr.add(z0, volume[z0:z0 + depth]):
            levels[f][lz0:lz0 + len(block)] = block
    for f in factors:
        np.testing.assert_allclose(levels[f], block_means(volume, f), rtol=1e-6, err_msg=f"factor {f}")


def test_integer_pyramid_is_rounded_block_mean():
    vol = np.random.default_rng(1).integers(0, 65535, (9, 10, 11), dtype=np.uint16)
    pyr = Pyramid(vol.shape, [2, 4], vol.dtype)
    out = {f: b for f, _, b in pyr.add(0, vol)}
    for f in (2, 4):
        assert out[f].dtype == np.uint16
        assert np.abs(out[f].astype(np.float64) - block_means(vol, f)).max() <= 0.5 + 1e-9


def test_pyramid_must_be_fed_in_order(volume):
    pyr = Pyramid(volume.shape, [2], volume.dtype)
    list(pyr.add(0, volume[:4]))
    with pytest.raises(ValueError, match="expected 4"):
        list(pyr.add(5, volume[5:8]))


# ------------------------------------------------------------------------------------------- layout
def test_slab_depth_follows_the_budget():
    shape = (1000, 2048, 2048)
    small = slab_depth(shape, np.dtype("float32"), [2, 4], 200 << 20)
    large = slab_depth(shape, np.dtype("float32"), [2, 4], 4000 << 20)
    assert small < large == 64
    assert small & (small - 1) == 0  # a power of two
    assert slab_depth((5, 64, 64), np.dtype("float32"), [], 1 << 30) == 5
    # The slab and its pyramid sums fit: slab bytes <= budget.
    assert small * 2048 * 2048 * 4 <= 200 << 20


def test_chunks_are_about_a_mebibyte_and_bounded_by_the_shape():
    c = chunk_shape((2000, 4096, 4096), 16, 4)
    assert c[0] == 16 and c[1] == c[2] and 0.25 <= np.prod(c) * 4 / 2**20 <= 2
    assert chunk_shape((3, 20, 30), 64, 4) == (3, 20, 30)


# ------------------------------------------------------------------------------------------- combine
@pytest.fixture(scope="module")
def physical(tmp_path_factory, small_scan, volume) -> tuple[Path, Plan, tconfig.TomoConfig]:
    d = tmp_path_factory.mktemp("physical")
    plan = make_plan(small_scan, volume.shape[0], volume.shape[1], j=3)
    cfg = config(pyramid=[2, 4])
    paths = write_chunks(volume, plan, d / "recon")
    combine(paths, plan, cfg, {"enabled": False, "dtype": "float32"}, d / "vol_recon.h5",
            config_path=d / "vol_recon.yaml")
    return d, plan, cfg


def test_physical_volume_reads_along_all_axes(physical, volume):
    d, _, _ = physical
    with h5py.File(d / "vol_recon.h5", "r") as f:
        data = f["exchange/data"]
        assert not data.is_virtual and data.shape == volume.shape and data.dtype == np.float32
        nz, ny, _ = volume.shape
        for i in (0, nz // 2, nz - 1):
            np.testing.assert_array_equal(data[i], volume[i])
        for i in (0, ny // 2, ny - 1):
            np.testing.assert_array_equal(data[:, i, :], volume[:, i, :])
            np.testing.assert_array_equal(data[:, :, i], volume[:, :, i])
        # Chunked in all three axes (not one slice per chunk), so orthogonal slices read a bounded share.
        assert data.chunks is not None and data.chunks[0] > 1 and data.chunks[1:] == (37, 37)


def test_physical_pyramid_levels_are_block_means(physical, volume):
    d, _, _ = physical
    with h5py.File(d / "vol_recon.h5", "r") as f:
        levels = pyramid_levels(f)
        assert sorted(levels) == [2, 4]
        for factor, ds in levels.items():
            assert ds.shape == tuple(-(-n // factor) for n in volume.shape)
            np.testing.assert_allclose(ds[()], block_means(volume, factor), rtol=1e-6)


def test_statistics_exact_where_cheap_and_histogram_from_the_fixed_sample(physical, volume):
    """count, min and max cover every voxel; histogram, mean and std the sample of `volume_stats.steps`."""
    d, _, _ = physical
    with h5py.File(d / "vol_recon.h5", "r") as f:
        counts, edges, st = read_histogram(f)
    v = volume.astype(np.float64)
    step_z, step_yx = steps(volume.shape)
    sample = v[::step_z, ::step_yx, ::step_yx]
    assert st["count"] == v.size and st["sampled"] == sample.size
    assert st["underflow"] == np.count_nonzero(sample < edges[0])
    assert st["overflow"] == np.count_nonzero(sample > edges[-1])
    np.testing.assert_array_equal(counts, np.histogram(sample, bins=edges)[0])
    assert st["min"] == v.min() and st["max"] == v.max()
    assert st["mean"] == pytest.approx(sample.mean(), rel=1e-9)
    assert st["std"] == pytest.approx(sample.std(), rel=1e-9)


def test_statistics_do_not_depend_on_the_chunking(volume, tmp_path, small_scan):
    """The same record whatever j, the steps of a large volume bounding the sample."""
    joined = []
    for j in (1, 4):
        paths = write_chunks(volume, make_plan(small_scan, volume.shape[0], volume.shape[1], j), tmp_path / str(j))
        r = join(paths)
        joined.append((asdict(r.stats), r.counts.tolist(), r.edges.tolist()))
    assert joined[0] == joined[1]
    step_z, step_yx = steps((2584, 16606, 16606))  # the bone scan's volume
    assert math.ceil(2584 / step_z) * math.ceil(16606 / step_yx) ** 2 <= SAMPLE_MAX


def test_provenance_repeats_the_run(physical, small_scan):
    d, plan, cfg = physical
    with h5py.File(d / "vol_recon.h5", "r") as f:
        prov = provenance.read(f)
        assert f["exchange/data"].attrs["axes"] == "z:y:x"
    assert prov["input_fingerprint"][0]["fingerprint"] == fingerprint(small_scan)["fingerprint"]
    assert prov["plan"]["sino_chunks"] == [list(c) for c in plan.sino_chunks]
    assert "numpy" in prov["software"] and "h5py" in prov["software"]
    assert "--configfile" in prov["rerun"] and str(d / "vol_recon.yaml") in prov["rerun"]
    # The config inside the file and the one beside it both give back the same parameters.
    beside = tconfig.load(yaml.safe_load((d / "vol_recon.yaml").read_text()))
    inside = tconfig.load(prov["config"])
    assert beside == inside
    assert beside.model_dump(exclude={"input"}) == cfg.model_dump(exclude={"input"})
    assert beside.input == [str(small_scan)]


def test_combine_never_holds_the_volume(tmp_path, small_scan, monkeypatch):
    """Peak Python-side allocation stays far below the volume's size with a small budget (and a statistics
    sample as small, relative to this volume, as `SAMPLE_MAX` is to a facility's)."""
    monkeypatch.setattr(volume_stats, "SAMPLE_MAX", 1 << 12)
    vol = np.random.default_rng(2).random((256, 64, 64), dtype=np.float32)  # 4 MB
    plan = make_plan(small_scan, 256, 64, j=4)
    paths = write_chunks(vol, plan, tmp_path / "recon")
    tracemalloc.start()
    combine(paths, plan, config(memory_mb=0.4, pyramid=[2]), {"enabled": False}, tmp_path / "v.h5")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < vol.nbytes / 4, peak
    with h5py.File(tmp_path / "v.h5", "r") as f:
        assert f["exchange/data"].chunks[0] < 64
        np.testing.assert_array_equal(f["exchange/data"][()], vol)


def test_virtual_volume_maps_the_chunks(tmp_path, small_scan, volume):
    plan = make_plan(small_scan, volume.shape[0], volume.shape[1], j=3)
    paths = write_chunks(volume, plan, tmp_path / "recon")
    out = tmp_path / "vol_recon.h5"
    sha = f"{'0' * 64}  {small_scan}\n"  # as written by the input_checksum rule (sha256sum format)
    combine(paths, plan, config(combine="virtual", pyramid=[2]), {"enabled": False}, out, input_sha256=sha)
    assert out.stat().st_size < volume.nbytes / 2
    with h5py.File(out, "r") as f:
        data = f["exchange/data"]
        assert data.is_virtual and len(data.virtual_sources()) == 3
        np.testing.assert_array_equal(data[:, 5, :], volume[:, 5, :])
        np.testing.assert_array_equal(data[:, :, 30], volume[:, :, 30])
        np.testing.assert_array_equal(data[10], volume[10])
        level = pyramid_levels(f)[2]
        assert not level.is_virtual
        np.testing.assert_allclose(level[()], block_means(volume, 2), rtol=1e-6)
        assert provenance.read(f)["input_sha256"] == sha


def test_virtual_combine_writes_no_temporary_of_a_temporary(tmp_path, small_scan, volume, monkeypatch):
    """A kill leaves only temporaries named ``.<output>.tmp-*``, which the next write and cleanup remove;
    a temporary of combine's own temporary (``..<output>.tmp-*.tmp-*``) would stay forever."""
    from tomosnake.io import atomic

    names = []
    real = atomic._tmp_name
    monkeypatch.setattr(atomic, "_tmp_name", lambda path: names.append(real(path).name) or real(path))
    plan = make_plan(small_scan, volume.shape[0], volume.shape[1], j=3)
    paths = write_chunks(volume, plan, tmp_path / "recon")
    names.clear()
    combine(paths, plan, config(combine="virtual"), {"enabled": False}, tmp_path / "vol_recon.h5")
    assert names and not [n for n in names if n.startswith("..")], names


def test_tori_provenance_is_written_when_a_tori_was_used(tmp_path, small_scan, volume):
    import json

    tori = tmp_path / "scan.tori"
    tori.write_text(json.dumps({"reconstruction_arguments": {"recon_kwargs": {"filter_name": "hann"}}}))
    plan = make_plan(small_scan, volume.shape[0], volume.shape[1], j=1)
    cfg = tconfig.load({"tori": str(tori), "overhead_mb": 0, "memory_mb": 64})
    paths = write_chunks(volume, plan, tmp_path / "recon")
    combine(paths, plan, cfg, {"enabled": False}, tmp_path / "v.h5")
    with h5py.File(tmp_path / "v.h5", "r") as f:
        filt = f["tori/reconstruction_arguments/recon_kwargs/filter_name"][()]
        assert (filt.decode() if isinstance(filt, bytes) else filt) == "hann"
        assert "tori/file_definitions/data_path" in f


# ------------------------------------------------------------------------------------------- copies
def test_ome_zarr_opens_with_zarr_and_ome_zarr(physical, volume, tmp_path):
    import dask.array as da
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader
    from ome_zarr_models.v05 import Image

    d, _, _ = physical
    out = tmp_path / "vol_recon.ome.zarr"
    write_ome_zarr(d / "vol_recon.h5", out, "vol")
    group = zarr.open_group(str(out), mode="r")
    Image.from_zarr(group)  # validates the metadata against the OME-Zarr 0.5 models
    ms = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert [ds["path"] for ds in ms["datasets"]] == ["0", "1", "2"]
    scales = [ds["coordinateTransformations"][0]["scale"] for ds in ms["datasets"]]
    shifts = [ds["coordinateTransformations"][1]["translation"] for ds in ms["datasets"]]
    assert scales == [[1.0] * 3, [2.0] * 3, [4.0] * 3]  # the phantom's pixel size has no unit: pixels
    assert shifts == [[0.0] * 3, [0.5] * 3, [1.5] * 3]
    np.testing.assert_array_equal(group["0"][()], volume)
    np.testing.assert_allclose(group["2"][()], block_means(volume, 4), rtol=1e-6)
    node = next(iter(Reader(parse_url(str(out)))()))
    assert any(isinstance(s, Multiscales) for s in node.specs)
    assert [a.shape for a in node.data] == [volume.shape, level_shape(volume.shape, 2), level_shape(volume.shape, 4)]
    np.testing.assert_array_equal(da.from_zarr(str(out / "0"))[:, 7, :].compute(), volume[:, 7, :])


def test_tiff_stack_has_one_file_per_slice(physical, volume, tmp_path):
    import tifffile

    d, _, _ = physical
    n = write_tiff_stack(d / "vol_recon.h5", tmp_path / "tiff", "vol")
    files = sorted((tmp_path / "tiff").glob("*.tif"))
    assert n == len(files) == volume.shape[0] and files[0].name == "vol_0000.tif"
    np.testing.assert_array_equal(tifffile.imread(files[13]), volume[13])


# ------------------------------------------------------------------------------------------- fingerprint
def test_fingerprint_sees_a_change_in_a_sampled_region_or_size_not_the_date(tmp_path):
    p = tmp_path / "big.raw"
    size = 40 * SAMPLE_BYTES
    with p.open("wb") as f:
        f.truncate(size)
    base = fingerprint(p)
    assert base["size"] == size
    st = p.stat()
    with p.open("r+b") as f:  # the last sample covers the file's end
        f.seek(size - 10)
        f.write(b"x")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and date: only the bytes differ
    changed_bytes = fingerprint(p)["fingerprint"]
    assert changed_bytes != base["fingerprint"]
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: the content is what counts
    assert fingerprint(p)["fingerprint"] == changed_bytes
    with p.open("ab") as f:
        f.write(b"y")
    assert fingerprint(p)["fingerprint"] != changed_bytes


def test_sha256_is_the_whole_file_hash(small_scan):
    assert sha256_file(small_scan, block=1000) == hashlib.sha256(small_scan.read_bytes()).hexdigest()


def test_ome_zarr_written_in_shard_rows_equals_the_volume(tmp_path, small_scan, monkeypatch):
    """Several shards per slice (small shards here): every shard row lands where it belongs."""
    import zarr

    from tomosnake.stages import combine as combine_module
    from tomosnake.stages import export

    monkeypatch.setattr(combine_module, "CHUNK_BYTES", 4096)  # 64-px chunks (the smallest side)
    monkeypatch.setattr(export, "SHARD_SIDE", 64)
    vol = np.random.default_rng(8).random((6, 150, 140), dtype=np.float32)
    plan = make_plan(small_scan, 6, 150, j=2)
    combine(write_chunks(vol, plan, tmp_path / "recon"), plan, config(pyramid=[2]), {"enabled": False},
            tmp_path / "v.h5")
    write_ome_zarr(tmp_path / "v.h5", tmp_path / "v.ome.zarr", "v")
    group = zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="r")
    assert group["0"].shards[1:] == (64, 64)
    np.testing.assert_array_equal(group["0"][()], vol)
    np.testing.assert_allclose(group["1"][()], block_means(vol, 2), rtol=1e-6)
