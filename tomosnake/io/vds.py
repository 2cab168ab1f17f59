"""HDF5 virtual datasets: a DXchange view over chunk files, copying no data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path


def _source_name(source: Path, vds_path: Path) -> str:
    """The source file as seen from the VDS file's folder, so a work directory can be moved whole."""
    return os.path.relpath(source.resolve(), vds_path.resolve().parent)


def stack(sources: Sequence[str | Path], out_path: str | Path, dataset: str = "exchange/data",
          axis: int = 0, extra: dict[str, np.ndarray] | None = None, atomic: bool = True) -> tuple[int, ...]:
    """Write ``out_path`` with a virtual ``dataset`` that concatenates ``dataset`` of each source along ``axis``.

    Small arrays in ``extra`` (e.g. theta) are written as real datasets. Returns the virtual shape.
    ``atomic=False`` writes ``out_path`` itself: for a caller whose ``out_path`` is already its own
    temporary (a temporary of a temporary, left by a kill, would match no leftover pattern).
    """
    out_path = Path(out_path)
    shapes, dtypes = [], set()
    for src in sources:
        with h5py.File(src, "r") as f:
            shapes.append(f[dataset].shape)
            dtypes.add(f[dataset].dtype)
    if len(dtypes) != 1:
        raise ValueError(f"sources of {out_path} have different dtypes: {sorted(map(str, dtypes))}")
    total = list(shapes[0])
    total[axis] = sum(s[axis] for s in shapes)
    layout = h5py.VirtualLayout(shape=tuple(total), dtype=dtypes.pop())
    offset = 0
    for src, shape in zip(sources, shapes, strict=True):
        index = [slice(None)] * len(shape)
        index[axis] = slice(offset, offset + shape[axis])
        layout[tuple(index)] = h5py.VirtualSource(_source_name(Path(src), out_path), dataset, shape=shape)
        offset += shape[axis]
    with atomic_path(out_path) if atomic else nullcontext(out_path) as tmp, h5py.File(tmp, "w", libver="latest") as f:
        f.create_virtual_dataset(dataset, layout, fillvalue=np.nan)
        for key, val in (extra or {}).items():
            f[key] = val
    return tuple(total)
