"""Generators of malformed scans: one function per malformation, each writing a real, read-only HDF5 file.

Every generator starts from a small phantom (`tomosnake.phantom.write_scan`), breaks one thing and
returns a `Malformed`: the file, the config overrides that complete the case, and the fragments the
one-line refusal (or the warning) must hold. Used by tests/test_malformed.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import edited_scan, read_only
from tomosnake.phantom import PhantomSpec, write_scan

SPEC = PhantomSpec(n_proj=40, n_rows=6, n_cols=48, center_offset=1.5, seed=3)
CENTER = {"recon": {"center": SPEC.center}}  # a configured centre: no automatic search reads projections


@dataclass(frozen=True)
class Malformed:
    scan: Path
    config: dict = field(default_factory=dict)
    fragments: tuple[str, ...] = ()


def _phantom(path: Path, edit: dict[str, np.ndarray | None] | None = None, spec: PhantomSpec = SPEC) -> Path:
    """The phantom with datasets replaced (None: deleted), read-only."""
    return edited_scan(path, spec, edit)


def _projections(dtype: str = "float64") -> np.ndarray:
    """The phantom's projections as numbers (a scratch file), to be broken by the caller."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_scan(Path(tmp) / "p.h5", SPEC)
        with h5py.File(path, "r") as f:
            return f["exchange/data"][()].astype(dtype)


# ------------------------------------------------------------------------------------ the malformations
def vds_missing_source(d: Path) -> Malformed:
    """/exchange/data is a virtual dataset over a file that has since gone (it reads as the fill value 0)."""
    source = d / "frames_source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = _projections("uint16").astype(np.uint16)
    scan = d / "vds.h5"
    write_scan(scan, SPEC)
    with h5py.File(scan, "a", libver="latest") as f:
        del f["exchange/data"]
        layout = h5py.VirtualLayout(shape=(SPEC.n_proj, SPEC.n_rows, SPEC.n_cols), dtype=np.uint16)
        layout[:] = h5py.VirtualSource(source.name, "data", shape=layout.shape)
        f.create_virtual_dataset("exchange/data", layout, fillvalue=0)
    source.unlink()
    return Malformed(read_only(scan), CENTER, (str(scan), "'/exchange/data'", "frames_source.h5", "missing"))


def zero_projections(d: Path) -> Malformed:
    scan = _phantom(d / "zeros.h5", {"exchange/data": np.zeros((SPEC.n_proj, SPEC.n_rows, SPEC.n_cols), np.uint16)})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data'", "zero"))


def equal_angles(d: Path) -> Malformed:
    scan = _phantom(d / "equal.h5", {"exchange/theta": np.full(SPEC.n_proj, 30.0)})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/theta'", "equal"))


def equal_angles_auto_center(d: Path) -> Malformed:
    """Constant angles with the automatic centre (no recon.center): the search must not run on them."""
    scan = _phantom(d / "equal_auto.h5", {"exchange/theta": np.full(SPEC.n_proj, 30.0)})
    return Malformed(scan, {}, (str(scan), "'/exchange/theta'", "equal"))


def flat_below_dark_columns(d: Path) -> Malformed:
    """Flats at or below the darks in three columns (a dead strip of the detector)."""
    with h5py.File(write_scan(d / "scratch.h5", SPEC), "r") as f:
        flats, darks = f["exchange/data_white"][()], f["exchange/data_dark"][()]
    (d / "scratch.h5").unlink()
    flats[:, :, 20:23] = darks[:, :, 20:23].min()
    scan = _phantom(d / "dead_columns.h5", {"exchange/data_white": flats})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data_white'", "'/exchange/data_dark'", "20"))


def negative_padding(d: Path) -> Malformed:
    return Malformed(_phantom(d / "pad.h5"), {"recon": {"center": SPEC.center, "pad": {"npad": -5}}},
                     ("config key 'recon.pad.npad'",))


def complex_data(d: Path) -> Malformed:
    data = _projections().astype(np.complex64) * (1 + 0.5j)
    scan = _phantom(d / "complex.h5", {"exchange/data": data})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data'", "complex64"))


def excluded_reversed(d: Path) -> Malformed:
    return Malformed(_phantom(d / "excl.h5"), {"recon": {"center": SPEC.center, "excluded_proj": [[20, 10]]}},
                     ("config key 'recon.excluded_proj'", "[20, 10]"))


def excluded_everything(d: Path) -> Malformed:
    scan = _phantom(d / "excl_all.h5")
    return Malformed(scan, {"recon": {"center": SPEC.center, "excluded_proj": [[0, 10], [10, SPEC.n_proj]]}},
                     (str(scan), "config key 'recon.excluded_proj'", "leaves 0 of the 40"))


def negative_int32(d: Path) -> Malformed:
    data = _projections().astype(np.int32)
    data[:, :, :10] = -data[:, :, :10]
    scan = _phantom(d / "int32.h5", {"exchange/data": data})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data'", "negative"))


def two_columns(d: Path) -> Malformed:
    scan = _phantom(d / "narrow.h5")
    return Malformed(scan, {"recon": {"center": 0.5}, "datasets": {"slice_hor": [20, 22, 1]}},
                     (str(scan), "config key 'datasets.slice_hor'", "2 column"))


def narrow_auto_center(d: Path) -> Malformed:
    """12 columns reconstruct, but are too few for the automatic centre search (the plan job would fail)."""
    scan = _phantom(d / "narrow_auto.h5")
    return Malformed(scan, {"datasets": {"slice_hor": [18, 30, 1]}},
                     (str(scan), "config key 'datasets.slice_hor'", "12 column", "recon.center"))


def nan_column(d: Path) -> Malformed:
    data = _projections("float32")
    data[:, :, 30] = np.nan
    scan = _phantom(d / "nan_column.h5", {"exchange/data": data})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data'", "column 30"))


REFUSED: dict[str, Callable[[Path], Malformed]] = {f.__name__: f for f in (
    vds_missing_source, zero_projections, equal_angles, equal_angles_auto_center, flat_below_dark_columns,
    negative_padding, complex_data, excluded_reversed, excluded_everything, negative_int32, two_columns,
    narrow_auto_center, nan_column)}


# ------------------------------------------------------------------------ usable, with a warning
def radian_angles(d: Path) -> Malformed:
    """Angles written in radians (0..pi): converted as the beamline GUI does, with a warning."""
    scan = _phantom(d / "radians.h5", {"exchange/theta": np.deg2rad(SPEC.theta())})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/theta'", "radians"))


def some_zero_projections(d: Path) -> Malformed:
    """Two of the sampled projections (0 and the last) are all zero, the rest are data: usable, with a warning."""
    data = _projections("uint16").astype(np.uint16)
    data[[0, -1]] = 0
    scan = _phantom(d / "some_zeros.h5", {"exchange/data": data})
    return Malformed(scan, CENTER, (str(scan), "'/exchange/data'", f"[0, {SPEC.n_proj - 1}]", "all zero"))


WARNED: dict[str, Callable[[Path], Malformed]] = {f.__name__: f for f in (radian_angles, some_zero_projections)}
