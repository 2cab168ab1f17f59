"""Read-only access to a raw DXchange scan: metadata, checks, and block reads.

All indices handed to `RawScan` are in *selected* coordinates: the
``slice_proj``/``slice_ver``/``slice_hor`` selection of the config is applied
here and nowhere else. Files are opened read-only; nothing is ever written to
the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import InputConfig

FLAT_CHECK_ROWS = 256  # rows of flats/darks read at a time by the checks


class ScanError(ValueError):
    """A raw scan that cannot be processed; the message names the file and dataset."""


@dataclass(frozen=True)
class Axis:
    """A selection ``start:stop:step`` of one axis of length ``full``."""

    start: int
    stop: int
    step: int
    full: int

    @classmethod
    def from_slice(cls, sel: tuple[int, int, int], full: int, what: str) -> Axis:
        start, stop, step = sel
        stop = full if stop < 0 or stop > full else stop
        if start >= stop:
            raise ScanError(f"selection {what}={list(sel)} is empty for a dataset of length {full}")
        return cls(start, stop, step, full)

    @property
    def size(self) -> int:
        return len(range(self.start, self.stop, self.step))

    def raw(self, a: int, b: int) -> slice:
        """The raw-file slice of selected indices ``a:b``."""
        return slice(self.start + a * self.step, self.start + b * self.step, self.step)


@dataclass(frozen=True)
class ScanInfo:
    """What the planner needs to know of a scan, from metadata alone."""

    path: str
    n_proj: int
    n_rows: int
    n_cols: int
    dtype: str
    n_flat: int
    n_dark: int
    theta_deg: tuple[float, ...]
    has_i0: bool
    sample: str
    pixel_size: float | None

    @property
    def raw_bytes(self) -> int:
        return self.n_proj * self.n_rows * self.n_cols * np.dtype(self.dtype).itemsize


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise ScanError(f"{path}: input file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ScanError(f"{path}: not a readable HDF5 file ({err})") from None


def _dataset(f: h5py.File, key: str, label: str) -> h5py.Dataset:
    obj = f.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise ScanError(f"{f.filename}: dataset '/{key.lstrip('/')}' ({label}) is missing")
    return obj


def _scalar(f: h5py.File, keys: tuple[str, ...]) -> object | None:
    for key in keys:
        obj = f.get(key)
        if isinstance(obj, h5py.Dataset) and obj.size == 1:
            val = obj[()]
            val = val.item() if hasattr(val, "item") else val
            return val.decode() if isinstance(val, bytes) else val
    return None


class RawScan:
    """A raw scan opened read-only, with flats and darks possibly in other files."""

    def __init__(self, path: str | Path, datasets: InputConfig = InputConfig()):
        self.path = str(path)
        self.cfg = datasets
        self._files: list[h5py.File] = []
        f = self._file(self.path)
        self._data = _dataset(f, datasets.data_path, "projections")
        if self._data.ndim != 3:
            raise ScanError(f"{self.path}: '/{datasets.data_path}' must be 3-D (projections, rows, columns), "
                            f"it has shape {self._data.shape}")
        n_proj, n_rows, n_cols = self._data.shape
        self.proj = Axis.from_slice(datasets.slice_proj, n_proj, "slice_proj")
        self.rows = Axis.from_slice(datasets.slice_ver, n_rows, "slice_ver")
        self.cols = Axis.from_slice(datasets.slice_hor, n_cols, "slice_hor")
        self._flat = self._frames(datasets.flat_file, datasets.flat_path, "flat fields")
        self._dark = self._frames(datasets.dark_file, datasets.dark_path, "dark fields")
        i0 = f.get(datasets.i0_path)
        self._i0 = i0 if isinstance(i0, h5py.Dataset) and i0.shape == (n_proj,) else None
        self.info = ScanInfo(
            path=self.path, n_proj=self.proj.size, n_rows=self.rows.size, n_cols=self.cols.size,
            dtype=str(self._data.dtype), n_flat=self._flat.shape[0], n_dark=self._dark.shape[0],
            theta_deg=tuple(float(t) for t in self._theta(f)), has_i0=self._i0 is not None,
            sample=str(_scalar(f, ("measurement/sample/name",)) or Path(self.path).stem),
            pixel_size=_scalar(f, ("measurement/instrument/detector/pixel_size",)),  # type: ignore[arg-type]
        )

    # -- opening ---------------------------------------------------------------
    def _file(self, path: str) -> h5py.File:
        for f in self._files:
            if Path(f.filename).resolve() == Path(path).resolve():
                return f
        f = _open(path)
        self._files.append(f)
        return f

    def _frames(self, file: str | None, key: str, label: str) -> h5py.Dataset:
        f = self._file(file or self.path)
        ds = _dataset(f, key, label)
        if ds.ndim != 3 or ds.shape[1:] != self._data.shape[1:]:
            raise ScanError(f"{f.filename}: '/{key}' ({label}) has shape {ds.shape}; frames of "
                            f"{self._data.shape[1:]} (rows, columns) like the projections are needed")
        if ds.shape[0] == 0:
            raise ScanError(f"{f.filename}: '/{key}' ({label}) holds no frames")
        return ds

    def _theta(self, f: h5py.File) -> np.ndarray:
        n_full = self.proj.full
        if self.cfg.theta_source == "calc":
            theta = np.linspace(self.cfg.theta_start, self.cfg.theta_end, n_full, endpoint=False)
        else:
            ds = _dataset(f, self.cfg.theta_path, "rotation angles")
            if ds.shape != (n_full,):
                raise ScanError(f"{self.path}: '/{self.cfg.theta_path}' has {ds.shape} angles but there are "
                                f"{n_full} projections (set datasets.theta_source: calc to compute them)")
            theta = ds[()].astype(np.float64)
            if not np.all(np.isfinite(theta)):
                raise ScanError(f"{self.path}: '/{self.cfg.theta_path}' holds non-finite angles")
        theta = theta[self.proj.raw(0, self.proj.size)]
        return np.where(theta < 0, theta + 360.0, theta)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()

    def __enter__(self) -> RawScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------
    def projections(self, p0: int, p1: int, r0: int, r1: int) -> np.ndarray:
        """Projections ``p0:p1``, rows ``r0:r1`` (selected coordinates), all selected columns, float32."""
        block = self._data[self.proj.raw(p0, p1), self.rows.raw(r0, r1), self.cols.raw(0, self.cols.size)]
        return block.astype(np.float32, copy=False)

    def _frames_rows(self, ds: h5py.Dataset, r0: int, r1: int) -> np.ndarray:
        return ds[:, self.rows.raw(r0, r1), self.cols.raw(0, self.cols.size)].astype(np.float32, copy=False)

    def flats(self, r0: int, r1: int) -> np.ndarray:
        """All flat frames, rows ``r0:r1``, float32 (n_flat, rows, cols)."""
        return self._frames_rows(self._flat, r0, r1)

    def darks(self, r0: int, r1: int) -> np.ndarray:
        """All dark frames, rows ``r0:r1``, float32 (n_dark, rows, cols)."""
        return self._frames_rows(self._dark, r0, r1)

    def i0(self, p0: int, p1: int) -> np.ndarray | None:
        """Beam-monitor intensity of projections ``p0:p1`` relative to the first selected one, or None."""
        if self._i0 is None:
            return None
        first = float(self._i0[self.proj.start])
        if not np.isfinite(first) or first == 0:
            raise ScanError(f"{self.path}: beam monitor '/{self.cfg.i0_path}' starts at {first}")
        return self._i0[self.proj.raw(p0, p1)].astype(np.float64) / first

    def check_flats(self) -> None:
        """Reject flats or darks that would divide by zero or invert contrast, reading a block of rows at a time."""
        n = self.info.n_rows
        for r0 in range(0, n, FLAT_CHECK_ROWS):
            r1 = min(r0 + FLAT_CHECK_ROWS, n)
            flat = self.flats(r0, r1).mean(axis=0)
            dark = self.darks(r0, r1).mean(axis=0)
            if not np.all(np.isfinite(flat)):
                raise ScanError(f"{self.path}: flat fields '/{self.cfg.flat_path}' hold non-finite values")
            if not np.all(np.isfinite(dark)):
                raise ScanError(f"{self.path}: dark fields '/{self.cfg.dark_path}' hold non-finite values")
            if np.all(flat == 0):
                raise ScanError(f"{self.path}: flat fields '/{self.cfg.flat_path}' are all zero")
            brighter = np.mean(dark >= flat)
            if brighter > 0.5:
                raise ScanError(f"{self.path}: the dark fields are brighter than the flat fields in "
                                f"{brighter:.0%} of pixels (are '/{self.cfg.flat_path}' and "
                                f"'/{self.cfg.dark_path}' swapped?)")
