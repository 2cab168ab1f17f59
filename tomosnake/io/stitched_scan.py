"""Several lateral scans of one sample read as one full-width scan: the stitching stage's drop-in for `RawScan`.

`StitchedScan` reads the same block of projections × rows from every file, normalises each
with its own flats and darks (TomoPy ``normalize`` semantics, as `tomosnake.corrections.flatdark`)
and joins them at whole-pixel column offsets with the blend of `tomosnake.corrections.stitch`. It returns
transmission, so its flats are ones and its darks zeros: the chain's flat/dark step is then an
exact no-op and the rest of the preprocessing chain runs unchanged. The offsets come from the
plan (`find_offsets`: motor positions refined on a few projections, seed paper §2.3);
`open_scan` gives whichever scan the config asks for.

Limits: the beam monitor (I0) is the first file's; the selection ``datasets.slice_*`` applies to
every file, so columns may not be selected (crop the stitched projections instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import h5py
import numpy as np

from tomosnake.config import ConfigError, InputConfig, StitchConfig, TomoConfig
from tomosnake.corrections.flatdark import FLOOR, flats_above, reduce_frames
from tomosnake.io.scan import RawScan, ScanError, ScanInfo
from tomosnake.corrections.stitch import edge_weights, motor_offsets, refine_offsets, stitched_width


def stitched_input(cfg: TomoConfig) -> str:
    """The file a stitched scan is named after (the first of ``stitch.inputs``), once the config agrees with
    stitching."""
    s, d = cfg.stitch, cfg.datasets
    if not s.enabled:
        raise ConfigError("config key 'stitch.enabled' is false")
    parts = {Path(p).resolve() for p in s.inputs}
    strays = [p for p in cfg.input if Path(p).resolve() not in parts]
    if strays:
        raise ConfigError(f"config key 'input': with stitch.enabled the one scan is joined from stitch.inputs; "
                          f"'input' must be empty or name only those files, not {strays}")
    if d.flat_file or d.dark_file:
        raise ConfigError("config key 'datasets.flat_file'/'datasets.dark_file': stitched scans are normalised "
                          "with the flats and darks inside each file")
    if tuple(d.slice_hor) != (0, -1, 1):
        raise ConfigError("config key 'datasets.slice_hor': columns cannot be selected in stitched files; "
                          "crop the stitched projections with preprocess.crop")
    return s.inputs[0]


def _references(part: RawScan, r0: int, r1: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(dark, max(flat - dark, floor)) of one file's rows ``r0:r1``."""
    dark = reduce_frames(part.darks, r0, r1, method)
    denom = reduce_frames(part.flats, r0, r1, method, flats_above(part.frames_label("flat"), dark, r0))
    denom -= dark
    np.maximum(denom, FLOOR, out=denom)
    return dark, denom


def _positions(cfg: StitchConfig, parts: Sequence[RawScan]) -> list[float]:
    if cfg.positions is not None:
        return list(cfg.positions)
    out = []
    for part in parts:
        with h5py.File(part.path, "r") as f:
            ds = f.get(cfg.position_path)
            if not isinstance(ds, h5py.Dataset) or ds.size == 0 or ds.dtype.kind not in "iuf":
                raise ScanError(f"{part.path}: no motor position at '/{cfg.position_path}' "
                                f"(set stitch.positions or stitch.position_path)")
            out.append(float(np.mean(ds[()])))  # some beamlines record the position per frame
    return out


def _pixel_size(cfg: StitchConfig, parts: Sequence[RawScan]) -> float:
    if cfg.pixel_size is not None:
        return cfg.pixel_size
    sizes = []
    for part in parts:
        size = part.info.pixel_size
        if size is None or not size > 0:
            raise ScanError(f"{part.path}: no positive detector pixel size in the file (set stitch.pixel_size)")
        sizes.append(float(size))
    if not np.allclose(sizes, sizes[0], rtol=1e-6):
        raise ScanError(f"stitch.inputs: the files give different pixel sizes {sizes} (set stitch.pixel_size)")
    return sizes[0]


def motor_guess(cfg: StitchConfig, datasets: InputConfig | None = None) -> list[float]:
    """Column offset of each of ``cfg.inputs`` from the motor positions alone (config order; the leftmost at 0)."""
    parts = [RawScan(p, InputConfig() if datasets is None else datasets) for p in cfg.inputs]
    try:
        guess = motor_offsets(_positions(cfg, parts), _pixel_size(cfg, parts))
    finally:
        for part in parts:
            part.close()
    return [g - min(guess) for g in guess]


def find_offsets(cfg: StitchConfig, datasets: InputConfig | None = None, method: str = "mean") -> list[int]:
    """Column offset of each of ``cfg.inputs`` (config order; the leftmost at 0): the motor positions'
    guess refined on ``cfg.n_proj`` evenly spaced projections × ``cfg.rows`` middle rows of each file."""
    datasets = InputConfig() if datasets is None else datasets
    parts = [RawScan(p, datasets) for p in cfg.inputs]
    try:
        _check_alike(parts)
        guess = motor_offsets(_positions(cfg, parts), _pixel_size(cfg, parts))
        info = parts[0].info
        picks = np.unique(np.linspace(0, info.n_proj - 1, min(cfg.n_proj, info.n_proj)).round().astype(int))
        n_rows = min(cfg.rows, info.n_rows)
        r0 = (info.n_rows - n_rows) // 2
        images = []
        for part in parts:
            dark, denom = _references(part, r0, r0 + n_rows, method)
            images.append(np.stack([(part.projections(p, p + 1, r0, r0 + n_rows)[0] - dark) / denom for p in picks]))
    finally:
        for part in parts:
            part.close()
    order = np.argsort(guess, kind="stable")
    try:
        refined = refine_offsets([images[i] for i in order], [guess[i] for i in order], window=cfg.window)
    except ValueError as err:
        names = ", ".join(Path(cfg.inputs[i]).name for i in order)
        raise ScanError(f"stitch.inputs (left to right: {names}): {err}") from None
    offsets = [0] * len(parts)
    for rank, i in enumerate(order):
        offsets[i] = int(refined[rank])
    return offsets


def _check_alike(parts: Sequence[RawScan]) -> None:
    """Every file must hold the same projections and rows at the same angles as the first."""
    first = parts[0].info
    theta0 = np.asarray(first.theta_deg)
    tol = 0.1 * float(np.median(np.abs(np.diff(theta0)))) if len(theta0) > 1 else 1e-3
    for part in parts[1:]:
        info = part.info
        if (info.n_proj, info.n_rows) != (first.n_proj, first.n_rows):
            raise ScanError(f"{info.path}: {info.n_proj} projections x {info.n_rows} rows, but {first.path} has "
                            f"{first.n_proj} x {first.n_rows}; stitched scans must match")
        worst = float(np.max(np.abs(np.asarray(info.theta_deg) - theta0)))
        if worst > tol:
            raise ScanError(f"{info.path}: angles differ from {first.path}'s by up to {worst:g} degrees "
                            f"(more than a tenth of the angular step)")


class StitchedScan:
    """Files of one sample at several lateral positions, read as one scan of flat-field-corrected transmission.

    ``offsets[i]`` is the stitched column where ``paths[i]`` starts (the smallest 0), as `find_offsets` gives.
    The reduced flats and darks of each file are kept for the rows last read (blocks of one row range
    are read one after another by the preprocessing tiles).
    """

    def __init__(self, paths: Sequence[str | Path], offsets: Sequence[int], datasets: InputConfig | None = None,
                 method: str = "mean"):
        datasets = InputConfig() if datasets is None else datasets
        if len(paths) != len(offsets):
            raise ScanError(f"stitching: {len(offsets)} offsets for {len(paths)} files (re-run the plan)")
        self.offsets = [int(o) for o in offsets]
        self.method = method
        self._datasets = datasets
        self._parts: list[RawScan] = []
        try:
            for p in paths:
                self._parts.append(RawScan(p, datasets))
            _check_alike(self._parts)
            widths = [part.info.n_cols for part in self._parts]
            try:
                width = stitched_width(widths, self.offsets)
            except ValueError as err:
                raise ScanError(f"stitch.inputs {[str(p) for p in paths]} at columns {self.offsets}: {err}") from None
        except BaseException:
            self.close()
            raise
        self._weights = [edge_weights(w) for w in widths]
        self._norm = np.zeros(width, dtype=np.float32)
        for off, w in zip(self.offsets, self._weights, strict=True):
            self._norm[off:off + len(w)] += w
        self._refs: tuple[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] | None = None
        first = self._parts[0].info
        self.path = first.path
        self.info = ScanInfo(
            path=first.path, n_proj=first.n_proj, n_rows=first.n_rows, n_cols=width, dtype=first.dtype,
            # The files' own frame counts: the chain sizes the flat/dark memory by them, and they are reduced here.
            n_flat=max(p.info.n_flat for p in self._parts), n_dark=max(p.info.n_dark for p in self._parts),
            theta_deg=first.theta_deg, has_i0=first.has_i0, sample=first.sample, pixel_size=first.pixel_size)

    def layout(self, cfg: StitchConfig) -> dict:
        """How the files were joined, for the report: each file's path and width, its offset from the motor
        positions and as refined (stitched columns, config order), the refinement's settings, and the overlap
        of each pair of neighbours left to right."""
        widths = [part.info.n_cols for part in self._parts]
        order = sorted(range(len(widths)), key=lambda i: self.offsets[i])
        overlaps = [[a, b, self.offsets[a] + widths[a] - self.offsets[b]] for a, b in pairwise(order)]
        return {"inputs": [str(part.path) for part in self._parts], "widths": widths,
                "motor_offsets": motor_guess(cfg, self._datasets), "offsets": list(self.offsets),
                "window": cfg.window, "n_proj": cfg.n_proj, "rows": cfg.rows, "overlaps": overlaps}

    def close(self) -> None:
        for part in self._parts:
            part.close()
        self._refs = None

    def __enter__(self) -> StitchedScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _references(self, r0: int, r1: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._refs is None or self._refs[0] != (r0, r1):
            self._refs = None  # free the old rows' references before reading the new ones
            self._refs = ((r0, r1), [_references(part, r0, r1, self.method) for part in self._parts])
        return self._refs[1]

    def projections(self, p0: int, p1: int, r0: int, r1: int) -> np.ndarray:
        """Stitched transmission of projections ``p0:p1``, rows ``r0:r1``, all columns, float32.

        The result equals `stitch.stitch_block` of the files' normalised blocks; it is summed one
        file at a time, so that only one file's block is held beside it (stitch_block needs them all).
        """
        out = np.zeros((p1 - p0, r1 - r0, self.info.n_cols), dtype=np.float32)
        for part, off, w, (dark, denom) in zip(self._parts, self.offsets, self._weights,
                                                self._references(r0, r1), strict=True):
            block = part.projections(p0, p1, r0, r1)
            block -= dark
            block /= denom
            block *= w
            out[..., off:off + block.shape[-1]] += block
            del block
        out /= self._norm
        return out

    def flats(self, r0: int, r1: int, max_frames: int | None = None) -> np.ndarray:
        """One flat of ones: the projections are already normalised."""
        return np.ones((1, r1 - r0, self.info.n_cols), dtype=np.float32)

    def darks(self, r0: int, r1: int, max_frames: int | None = None) -> np.ndarray:
        """One dark of zeros: the projections are already normalised."""
        return np.zeros((1, r1 - r0, self.info.n_cols), dtype=np.float32)

    def frames_label(self, kind: str) -> str:
        """What the stitched flats or darks are (ones and zeros: the files' own are checked as they are read)."""
        return f"{self.info.path}: stitched {kind} fields"

    def zero_warning(self, p0: int = 0, p1: int | None = None) -> str | None:
        """`RawScan.zero_warning` of every file, joined."""
        return "; ".join(w for part in self._parts if (w := part.zero_warning(p0, p1))) or None

    def i0(self, p0: int, p1: int) -> np.ndarray | None:
        """The first file's beam monitor, relative to its first selected projection, or None."""
        return self._parts[0].i0(p0, p1)

    def check_i0(self) -> None:
        """`RawScan.check_i0` of the first file (its monitor is the one used)."""
        self._parts[0].check_i0()

    def check_flats(self) -> None:
        """`RawScan.check_flats` of every file."""
        for part in self._parts:
            part.check_flats()

    def check_data(self) -> list[str]:
        """`RawScan.check_data` of every file; their warnings."""
        return [w for part in self._parts for w in part.check_data()]


Scan = RawScan | StitchedScan


def open_scan(cfg: TomoConfig, input_path: str | Path, offsets: Sequence[int] | None = None) -> Scan:
    """The scan ``input_path`` names: a `RawScan`, or with ``stitch.enabled`` the `StitchedScan` of
    ``stitch.inputs`` (``input_path`` must be the first of them) at ``offsets`` (the plan's; found when None)."""
    if not cfg.stitch.enabled:
        return RawScan(input_path, cfg.datasets)
    first = stitched_input(cfg)
    if Path(input_path).resolve() != Path(first).resolve():
        raise ScanError(f"{input_path}: a stitched scan is opened by its first file, {first}")
    method = cfg.preprocess.flat_dark.method
    if offsets is None:
        offsets = find_offsets(cfg.stitch, cfg.datasets, method)
    return StitchedScan(cfg.stitch.inputs, offsets, cfg.datasets, method)

