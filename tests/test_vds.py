"""The virtual dataset joins chunk files without copying their data."""

import h5py
import numpy as np

from tomosnake.io.vds import stack


def test_vds_reads_like_its_sources_and_is_small(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.random((n, 16, 64), dtype=np.float32) for n in (5, 7, 4)]
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / "chunks" / f"chunk_{i}.h5")
        paths[-1].parent.mkdir(exist_ok=True)
        with h5py.File(paths[-1], "w") as f:
            f["exchange/data"] = part
    out = tmp_path / "merged.vds.h5"
    shape = stack(paths, out, extra={"exchange/theta": np.arange(16.0)})
    assert shape == (16, 16, 64)
    assert out.stat().st_size < sum(p.nbytes for p in parts) / 10
    # Moving the whole folder keeps the VDS readable: sources are stored relative to it.
    moved = tmp_path.rename(tmp_path.parent / (tmp_path.name + "_moved"))
    with h5py.File(moved / "merged.vds.h5", "r") as f:
        np.testing.assert_array_equal(f["exchange/data"][()], np.concatenate(parts))
        np.testing.assert_array_equal(f["exchange/data"][:, 3, :], np.concatenate(parts)[:, 3, :])
        assert f["exchange/data"].is_virtual
        np.testing.assert_array_equal(f["exchange/theta"][()], np.arange(16.0))
