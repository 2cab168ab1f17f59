"""Raw scan access: selections, and bad input stopped with one line naming file and dataset."""

import h5py
import numpy as np
import pytest

from tomosnake.config import InputConfig
from tomosnake.phantom import PhantomSpec, write_scan
from tomosnake.io.scan import RawScan, ScanError


@pytest.fixture()
def scan_file(tmp_path):
    return write_scan(tmp_path / "s.h5", PhantomSpec(n_proj=20, n_rows=6, n_cols=32, noise=False))


def test_selection_maps_to_raw_indices(scan_file):
    cfg = InputConfig(slice_proj=(2, -1, 3), slice_ver=(1, 5, 1), slice_hor=(4, 30, 2))
    with RawScan(scan_file, cfg) as scan, h5py.File(scan_file) as f:
        raw = f["exchange/data"][2::3, 1:5, 4:30:2].astype(np.float32)
        assert (scan.info.n_proj, scan.info.n_rows, scan.info.n_cols) == raw.shape
        np.testing.assert_array_equal(scan.projections(1, 4, 1, 3), raw[1:4, 1:3])
        np.testing.assert_allclose(scan.info.theta_deg, f["exchange/theta"][2::3])
        np.testing.assert_array_equal(scan.flats(0, 4), f["exchange/data_white"][:, 1:5, 4:30:2])


def _rewrite(path, key, value):
    with h5py.File(path, "a") as f:
        del f[key]
        if value is not None:
            f[key] = value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("exchange/data", None, r"'/exchange/data' \(projections\) is missing"),
        ("exchange/data_white", np.ones((3, 5, 32)), r"'/exchange/data_white' \(flat fields\) has shape"),
        ("exchange/data_dark", None, r"'/exchange/data_dark' \(dark fields\) is missing"),
        ("exchange/theta", np.arange(7.0), r"'/exchange/theta' has \(7,\) angles but there are 20"),
    ],
)
def test_bad_datasets_are_named(scan_file, key, value, message):
    _rewrite(scan_file, key, value)
    with pytest.raises(ScanError, match=message) as err:
        RawScan(scan_file).check_flats()
    assert str(scan_file) in str(err.value)


@pytest.mark.parametrize(
    ("flat", "message"),
    [(np.nan, "non-finite"), (0.0, "all zero"), (50.0, "dark fields are brighter")],
)
def test_bad_flats_are_rejected(scan_file, flat, message):
    _rewrite(scan_file, "exchange/data_white", np.full((4, 6, 32), flat, dtype=np.float32))
    with RawScan(scan_file) as scan, pytest.raises(ScanError, match=message):
        scan.check_flats()


def test_truncated_file_is_reported(tmp_path, scan_file):
    data = scan_file.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ScanError, match="cut.h5: not a readable HDF5 file"):
        with RawScan(cut) as scan:
            scan.projections(0, 20, 0, 6)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ScanError, match="input file not found"):
        RawScan(tmp_path / "nope.h5")


def test_theta_can_be_computed(scan_file):
    _rewrite(scan_file, "exchange/theta", None)
    with RawScan(scan_file, InputConfig(theta_source="calc", theta_end=360)) as scan:
        np.testing.assert_allclose(scan.info.theta_deg, np.arange(20) * 18.0)
