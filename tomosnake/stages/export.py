"""Copies of the combined volume in other formats, slab by slab: OME-Zarr (with the pyramid) and a TIFF stack.

OME-Zarr 0.5 (Zarr v3) opens in napari (napari-ome-zarr) and in Dask
(``dask.array.from_zarr(path + "/0")``) without conversion; level ``i`` is the
volume's pyramid level of factor ``f`` with scale ``f`` pixels and a translation
of ``(f - 1) / 2`` pixels (a block mean sits at its block's centre), in
micrometres when the raw file gives the pixel size. The TIFF stack is one file
per slice (``<name>_<z>.tif``), for tools that want that.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_dir
from tomosnake.stages.combine import chunk_shape, pyramid_levels, slab_depth
from tomosnake.report.timings import io_timer

SHARD_SIDE = 1024  # (y, x) of a Zarr shard: one file per (depth x 1024 x 1024) block, not one per chunk


def _depth(data: h5py.Dataset, budget_bytes: int) -> int:
    """Slices per read: the file's own chunk depth, or (a VDS) as many as the budget allows."""
    return data.chunks[0] if data.chunks else slab_depth(data.shape, data.dtype, [], budget_bytes)


def _blocks(data: h5py.Dataset, depth: int, band: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """(z0, y0, block) of ``depth`` slices and ``band`` rows (default all), read into one reused buffer."""
    nz, ny, nx = data.shape
    band = band or ny
    buf = np.empty((depth, band, nx), data.dtype)
    for z0 in range(0, nz, depth):
        for y0 in range(0, ny, band):
            dz, dy = min(depth, nz - z0), min(band, ny - y0)
            with io_timer():
                data.read_direct(buf, np.s_[z0:z0 + dz, y0:y0 + dy], np.s_[:dz, :dy])
            yield z0, y0, buf[:dz, :dy]


def _levels(f: h5py.File) -> list[tuple[int, h5py.Dataset]]:
    return [(1, f["exchange/data"]), *pyramid_levels(f).items()]


def write_ome_zarr(volume_path: str | Path, out_path: str | Path, name: str,
                   budget_bytes: int = 256 << 20) -> list[tuple[int, tuple[int, ...]]]:
    """Write the volume and its pyramid levels as one OME-Zarr multiscale image; return (factor, shape) per level."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    written = []
    with h5py.File(volume_path, "r") as f, atomic_dir(out_path) as tmp:
        um = f["exchange/data"].attrs.get("pixel_size_um")
        unit = 1.0 if um is None else float(um)
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        datasets = []
        depth = _depth(f["exchange/data"], budget_bytes)
        for i, (factor, data) in enumerate(_levels(f)):
            chunks = chunk_shape(data.shape, depth, data.dtype.itemsize)
            shards = (chunks[0], *(min(math.ceil(n / c) * c, max(c, SHARD_SIDE // c * c))
                                   for n, c in zip(data.shape[1:], chunks[1:], strict=True)))
            arr = group.create_array(str(i), shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards,
                                       dimension_names=("z", "y", "x"))
            # Blocks of whole shards (depth slices x one shard row): each shard is written once,
            # and a block holds about a quarter of a slab of a 4096-px volume.
            for z0, y0, block in _blocks(data, depth, shards[1]):
                with io_timer():
                    arr[z0:z0 + block.shape[0], y0:y0 + block.shape[1]] = block
            datasets.append({"path": str(i), "coordinateTransformations": [
                {"type": "scale", "scale": [factor * unit] * 3},
                {"type": "translation", "translation": [(factor - 1) / 2 * unit] * 3}]})
            written.append((factor, data.shape))
        axes = [{"name": a, "type": "space"} | ({"unit": "micrometer"} if um is not None else {}) for a in "zyx"]
        write_multiscales_metadata(group, datasets, fmt=FormatV05(), axes=axes, name=name)
    return written


def write_tiff_stack(volume_path: str | Path, out_dir: str | Path, name: str, budget_bytes: int = 256 << 20) -> int:
    """One TIFF per slice of ``/exchange/data`` (resolution tags in micrometres when known); return the count."""
    import tifffile

    with h5py.File(volume_path, "r") as f, atomic_dir(out_dir) as tmp:
        data = f["exchange/data"]
        um = data.attrs.get("pixel_size_um")
        extra: dict[str, Any] = {} if um is None else {"resolution": (1e4 / um, 1e4 / um),
                                                       "resolutionunit": "CENTIMETER"}
        digits = max(4, len(str(data.shape[0] - 1)))
        for z0, _, block in _blocks(data, _depth(data, budget_bytes)):
            for i, img in enumerate(block):
                with io_timer():
                    tifffile.imwrite(tmp / f"{name}_{z0 + i:0{digits}d}.tif", img, **extra)
        return data.shape[0]
