"""Read-only access to a raw DXchange scan: metadata, checks, and block reads.

All indices handed to `RawScan` are in *selected* coordinates: the
``slice_proj``/``slice_ver``/``slice_hor`` selection of the config is applied
here and nowhere else. Files are opened read-only; nothing is ever written to
the input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import InputConfig

FLAT_CHECK_ROWS = 256  # rows of flats/darks read at a time by the checks
FLAT_CHECK_FRAMES = 1  # flats and darks (evenly spaced) read whole by the checks: 172 MB at 2584 x 16606
SAMPLE_FRAMES = 8  # evenly spaced projections read by `RawScan.check_data`
SAMPLE_FRAME_BYTES = 32 << 20  # larger frames are sampled every few rows
# The beamline GUI's rule (formats.md): angles spanning at most this many units are radians.
RADIAN_SPAN = 10.0


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
    if obj.dtype.kind not in "iuf":
        raise ScanError(f"{f.filename}: '/{key.lstrip('/')}' ({label}) holds {obj.dtype} values; "
                        f"real numbers (integers or floats) are needed")
    check_virtual_sources(obj, label)
    return obj


def _source_path(vds_file: str, name: str) -> Path | None:
    """Where HDF5 finds a virtual dataset's source file: as given, under $HDF5_VDS_PREFIX, beside the VDS
    file, or in the working directory; None if nowhere."""
    if name == ".":
        return Path(vds_file)
    given = Path(name)
    prefix = os.environ.get("HDF5_VDS_PREFIX")
    bases = [Path(prefix)] if prefix else []
    for candidate in [given, *(b / given for b in [*bases, Path(vds_file).parent, Path.cwd()])]:
        if candidate.is_file():
            return candidate
    return None


def check_virtual_sources(ds: h5py.Dataset, label: str) -> None:
    """Refuse a virtual dataset whose source file or dataset is missing: HDF5 would read it as the fill value."""
    if not ds.is_virtual:
        return
    where = f"{ds.file.filename}: '{ds.name}' ({label}) is a virtual dataset whose source"
    for vs in ds.virtual_sources():
        path = _source_path(ds.file.filename, vs.file_name)
        if path is None:
            raise ScanError(f"{where} file {vs.file_name} is missing (it would read as "
                            f"{ds.fillvalue} everywhere)")
        with h5py.File(path, "r") as src:
            if not isinstance(src.get(vs.dset_name), h5py.Dataset):
                raise ScanError(f"{where} dataset '{vs.dset_name}' is missing from {path}")


def columns_named(cols: np.ndarray) -> str:
    """'column 3' or 'columns 3, 4, 9, ...' (at most eight named)."""
    listed = [int(c) for c in cols]
    named = ", ".join(map(str, listed[:8])) + (", ..." if len(listed) > 8 else "")
    return f"column {named}" if len(cols) == 1 else f"columns {named}"


def _scalar(f: h5py.File, keys: tuple[str, ...]) -> object | None:
    for key in keys:
        obj = f.get(key)
        if isinstance(obj, h5py.Dataset) and obj.size == 1:
            val = obj[()]
            val = val.item() if hasattr(val, "item") else val
            return val.decode() if isinstance(val, bytes) else val
    return None


def _sample(n: int, count: int) -> list[int]:
    """At most ``count`` evenly spaced indices of ``n`` frames, first and last included."""
    return sorted({int(i) for i in np.linspace(0, n - 1, max(1, min(count, n))).round()})


class UnreadableFrame(ScanError, OSError):
    """HDF5 cannot read a frame (a corrupt compressed chunk, a truncated file); names file, dataset, frame."""


def read_frames(ds: h5py.Dataset, frames: slice | Sequence[int], rows: slice, cols: slice, label: str) -> np.ndarray:
    """``ds[frames, rows, cols]`` (frames: a slice, or indices read one by one); a frame HDF5 cannot read
    is named (the block's frames are tried one at a time to find it)."""
    index = range(ds.shape[0])[frames] if isinstance(frames, slice) else frames
    try:
        if isinstance(frames, slice):
            return ds[frames, rows, cols]
        return np.stack([ds[i, rows, cols] for i in frames])
    except OSError as err:
        for i in index:
            try:
                ds[i, rows, cols]
            except OSError as frame_err:
                raise UnreadableFrame(f"{ds.file.filename}: {label} '{ds.name}' frame {i} cannot be read "
                                      f"({frame_err})") from None
        raise UnreadableFrame(f"{ds.file.filename}: {label} '{ds.name}' frames {index[0]} to {index[-1]} cannot "
                              f"be read ({err})") from None


def check_frames(block: np.ndarray, frames: Sequence[int], ds: h5py.Dataset, label: str) -> None:
    """Refuse a block of raw frames (frames, rows, columns) holding non-finite values or negative counts,
    naming the file, the dataset and the first bad frame (``frames``: the block's frame indices in the file).
    Two passes over the block for floats (min and max: NaN and infinities show in them), one for signed
    integers, none for unsigned; the bad frame is looked for only once there is one."""
    if block.dtype.kind not in "if" or not block.size:
        return
    lo = block.min()
    hi = block.max() if block.dtype.kind == "f" else 0
    flat = block.reshape(len(block), -1)
    where = f"{ds.file.filename}: {label} '{ds.name}'"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = ~np.isfinite(flat).all(axis=1)
        i = int(np.flatnonzero(bad)[0])
        cols = np.flatnonzero(~np.isfinite(block[i]).all(axis=0))
        raise ScanError(f"{where} frame {frames[i]} holds NaN or infinite values in {columns_named(cols)} (of the "
                        f"selection; {int(bad.sum())} of the {len(block)} frames read have them)")
    if lo < 0:
        low = flat.min(axis=1)
        i = int(np.flatnonzero(low < 0)[0])
        cols = np.flatnonzero((block[i] < 0).any(axis=0))
        raise ScanError(f"{where} ({block.dtype}) frame {frames[i]} holds negative counts (as low as {low[i]:g}) "
                        f"in {columns_named(cols)} (of the selection); raw counts cannot be negative")


class RawScan:
    """A raw scan opened read-only, with flats and darks possibly in other files."""

    def __init__(self, path: str | Path, datasets: InputConfig | None = None):
        datasets = InputConfig() if datasets is None else datasets
        self.path = str(path)
        self.cfg = datasets
        self.warnings: list[str] = []  # usable oddities, shown in the log and on the report's first page
        self._nonzero: dict[int, bool] = {}  # projection (file index) -> any non-zero value read
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
            theta = self._degrees(theta)
        theta = theta[self.proj.raw(0, self.proj.size)]
        if np.ptp(theta) == 0:
            where = (f"'/{self.cfg.theta_path}'" if self.cfg.theta_source == "exchange"
                     else "config keys 'datasets.theta_start'/'datasets.theta_end'")
            raise ScanError(f"{self.path}: {where}: all {theta.size} selected angles are equal ({theta[0]:g}); "
                            f"a reconstruction needs projections at different angles")
        return np.where(theta < 0, theta + 360.0, theta)

    def _degrees(self, theta: np.ndarray) -> np.ndarray:
        """Angles in degrees: a span of at most `RADIAN_SPAN` is read as radians (the GUI's rule), with a warning.

        The GUI's reading is kept so that a file gives the volume the beamline made of it; no real
        scan covers 10 degrees or less, so degrees are not mistaken for radians in practice.
        """
        span = float(np.ptp(theta))
        if not 0 < span <= RADIAN_SPAN:
            return theta
        self.warnings.append(f"{self.path}: '/{self.cfg.theta_path}' spans {theta.min():g} to {theta.max():g}: "
                             f"read as radians and converted to degrees, as the beamline GUI does (a span above "
                             f"{RADIAN_SPAN:g} is read as degrees)")
        return np.rad2deg(theta)

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
        """Projections ``p0:p1``, rows ``r0:r1`` (selected coordinates), all selected columns, float32.

        Every frame read is checked (`check_frames`); which frames were all zero is kept for `zero_frames`.
        """
        block = read_frames(self._data, self.proj.raw(p0, p1), self.rows.raw(r0, r1), self.cols.raw(0, self.cols.size),
                            "projections")
        frames = range(self.proj.start + p0 * self.proj.step, self.proj.start + p1 * self.proj.step, self.proj.step)
        check_frames(block, frames, self._data, "projections")
        nonzero = np.any(block.reshape(len(block), -1), axis=1).tolist()
        for i, any_value in zip(frames, nonzero, strict=True):
            self._nonzero[i] = self._nonzero.get(i, False) or any_value
        return block.astype(np.float32, copy=False)

    def zero_frames(self, p0: int = 0, p1: int | None = None) -> list[int]:
        """Projections ``p0:p1`` (selected coordinates) read so far whose every value read was zero, as frame
        indices in the file."""
        span = range(self.proj.start + p0 * self.proj.step, self.proj.start + (self.proj.size if p1 is None else p1)
                     * self.proj.step, self.proj.step)
        return sorted(i for i, nonzero in self._nonzero.items() if not nonzero and i in span)

    def zero_warning(self, p0: int = 0, p1: int | None = None) -> str | None:
        """The warning for `zero_frames` (usable but odd input, README), or None."""
        zero = self.zero_frames(p0, p1)
        if not zero:
            return None
        named = ", ".join(map(str, zero[:12])) + (", ..." if len(zero) > 12 else "")
        return (f"{self.path}: projections '/{self.cfg.data_path}' frames {named} ({len(zero)} in all) are all zero "
                f"(leave them out with recon.excluded_proj)")

    def _frames_rows(self, ds: h5py.Dataset, r0: int, r1: int, max_frames: int | None) -> np.ndarray:
        rows, cols = self.rows.raw(r0, r1), self.cols.raw(0, self.cols.size)
        n = ds.shape[0]
        label = "flat fields" if ds is self._flat else "dark fields"
        if max_frames is None or max_frames >= n:
            block = read_frames(ds, slice(None), rows, cols, label)
            check_frames(block, range(n), ds, label)
            return block.astype(np.float32, copy=False)
        # Evenly spaced frames (each an HDF5 chunk at beamlines), read one by one: h5py's list indexing is
        # ~15x slower than separate reads.
        picks = _sample(n, max_frames)
        block = read_frames(ds, picks, rows, cols, label)
        check_frames(block, picks, ds, label)
        return block.astype(np.float32, copy=False)

    def frames_label(self, kind: str) -> str:
        """'<file>: flat fields '/<dataset>'' for ``kind`` 'flat' or 'dark' (the file that holds them)."""
        ds = self._flat if kind == "flat" else self._dark
        return f"{ds.file.filename}: {kind} fields '{ds.name}'"

    def flats(self, r0: int, r1: int, max_frames: int | None = None) -> np.ndarray:
        """Flat frames (all, or at most ``max_frames`` evenly spaced), rows ``r0:r1``, float32 (frames, rows, cols)."""
        return self._frames_rows(self._flat, r0, r1, max_frames)

    def darks(self, r0: int, r1: int, max_frames: int | None = None) -> np.ndarray:
        """Dark frames (all, or at most ``max_frames`` evenly spaced), rows ``r0:r1``, float32 (frames, rows, cols)."""
        return self._frames_rows(self._dark, r0, r1, max_frames)

    def i0(self, p0: int, p1: int) -> np.ndarray | None:
        """Beam-monitor intensity of projections ``p0:p1`` relative to the first selected one, or None."""
        if self._i0 is None:
            return None
        first = float(self._i0[self.proj.start])
        if not np.isfinite(first) or first == 0:
            raise ScanError(f"{self.path}: beam monitor '/{self.cfg.i0_path}' starts at {first}")
        return self._i0[self.proj.raw(p0, p1)].astype(np.float64) / first

    def check_i0(self) -> None:
        """Refuse a beam monitor the I0 correction cannot divide by: its selected values (one number per
        projection, read whole) must be finite and positive, the first above all (the others are relative to it)."""
        values = self._i0[self.proj.raw(0, self.proj.size)] if self._i0 is not None else np.ones(1)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            i = int(bad[0])
            where = "starts at" if i == 0 else f"at frame {self.proj.start + i * self.proj.step} is"
            more = f" ({bad.size} bad values)" if bad.size > 1 else ""
            raise ScanError(f"{self.path}: beam monitor '/{self.cfg.i0_path}' {where} {values[i]:g}{more}, and the I0 "
                            f"correction divides by it; set preprocess.i0.source: air, or preprocess.i0.enabled: false")

    def check_flats(self) -> None:
        """Reject flats or darks that would divide by zero or invert contrast, block of `FLAT_CHECK_ROWS`
        rows by block. Reads `FLAT_CHECK_FRAMES` evenly spaced flats and darks, a whole flat and dark at a
        time (at beamlines a frame is one HDF5 chunk: any row of it costs the whole frame)."""
        rows, cols = self.rows.raw(0, self.info.n_rows), self.cols.raw(0, self.cols.size)
        flat_ids, dark_ids = (_sample(ds.shape[0], FLAT_CHECK_FRAMES) for ds in (self._flat, self._dark))
        dead = np.zeros(self.info.n_cols, dtype=bool)
        for k in range(max(len(flat_ids), len(dark_ids))):
            flat = read_frames(self._flat, [flat_ids[min(k, len(flat_ids) - 1)]], rows, cols, "flat fields")[0]
            dark = read_frames(self._dark, [dark_ids[min(k, len(dark_ids) - 1)]], rows, cols, "dark fields")[0]
            for frame, key, label in ((flat, self.cfg.flat_path, "flat"), (dark, self.cfg.dark_path, "dark")):
                if frame.dtype.kind == "f" and not np.all(np.isfinite(frame)):
                    raise ScanError(f"{self.path}: {label} fields '/{key}' hold non-finite values")
            for r0 in range(0, flat.shape[0], FLAT_CHECK_ROWS):
                f, d = flat[r0:r0 + FLAT_CHECK_ROWS], dark[r0:r0 + FLAT_CHECK_ROWS]
                if not np.any(f):
                    raise ScanError(f"{self.path}: flat fields '/{self.cfg.flat_path}' are all zero")
                brighter = np.mean(d >= f)
                if brighter > 0.5:
                    raise ScanError(f"{self.path}: the dark fields are brighter than the flat fields in "
                                    f"{brighter:.0%} of pixels (are '/{self.cfg.flat_path}' and "
                                    f"'/{self.cfg.dark_path}' swapped?)")
                dead |= np.any(f <= d, axis=0)
        if dead.any():
            # TomoPy's floor of 1e-6 for flat - dark turns such pixels into huge values: streaks.
            raise ScanError(f"{self.path}: flat fields '/{self.cfg.flat_path}' are at or below the dark fields "
                            f"'/{self.cfg.dark_path}' in {columns_named(np.flatnonzero(dead))} (of the selection); "
                            f"leave them out with datasets.slice_hor or preprocess.crop")

    def check_data(self) -> list[str]:
        """Refuse projections that cannot give a right volume, from `SAMPLE_FRAMES` evenly spaced frames;
        return the warnings (the file's own, e.g. angles read as radians, and some all-zero frames).

        Refused: all sampled frames zero, non-finite values (they become streaks), negative counts
        (integer or float data). The jobs check every frame they read (`check_frames`).
        """
        n = self.info.n_proj
        picks = np.unique(np.linspace(0, n - 1, min(SAMPLE_FRAMES, n)).round().astype(int))
        frame_bytes = self.info.n_rows * self.info.n_cols * self._data.dtype.itemsize
        row_step = max(1, -(-frame_bytes // SAMPLE_FRAME_BYTES))
        rows = slice(self.rows.start, self.rows.stop, self.rows.step * row_step)
        cols = self.cols.raw(0, self.cols.size)
        label = f"{self.path}: projections '/{self.cfg.data_path}'"
        zero, bad_cols, lowest = [], np.zeros(self.info.n_cols, dtype=bool), 0.0
        for p in picks:
            frame = read_frames(self._data, [self.proj.start + int(p) * self.proj.step], rows, cols, "projections")[0]
            if not np.any(frame):
                zero.append(int(p))
            if frame.dtype.kind == "f":
                finite = np.isfinite(frame)
                bad_cols |= ~np.all(finite, axis=0)
                lowest = min(lowest, float(np.min(frame, initial=0, where=finite)))
            elif frame.dtype.kind == "i":
                lowest = min(lowest, float(frame.min()))
        if len(zero) == len(picks):
            raise ScanError(f"{label} are all zero in the {len(picks)} frames sampled")
        if bad_cols.any():
            raise ScanError(f"{label} hold NaN or infinite values in {columns_named(np.flatnonzero(bad_cols))} "
                            f"(of the selection; they would reconstruct as streaks)")
        if lowest < 0:
            raise ScanError(f"{label} ({self._data.dtype}) hold negative counts (as low as {lowest:g}); raw "
                            f"counts cannot be negative")
        warnings = list(self.warnings)
        if zero:
            warnings.append(f"{label}: the sampled projections {zero} are all zero (leave them out with "
                            f"recon.excluded_proj)")
        return warnings
