"""Identify an input file by its content, cheaply (a fingerprint) or exactly (a full SHA-256).

A full hash of a 10 TB scan reads all of it again: about 3 hours at 1 GB/s,
longer than the reconstruction. The fingerprint reads 16 MiB whatever the size:
SHA-256 over the file's size, its HDF5 structure (every dataset's name, shape,
dtype, chunks, filters and virtual sources; none for a file that is not HDF5)
and 16 evenly spaced 1 MiB samples of its bytes (the whole file up to 16 MiB).
Its modification time is not in it: a copy that keeps an old date (``cp -p``,
``rsync -a``, a restore) of another scan is told apart, and touching a file
changes nothing. It tells files apart that differ in size, layout or any
sampled region (a different scan, a truncated copy, a rewritten header); it
cannot prove two files identical, so it is stored under the name
``fingerprint``, never ``checksum``. Where proof is needed, `sha256_file` runs
as its own job beside pre-processing (config ``output.input_sha256``).
The run's identity file (`tomosnake.outdir.write_input_id`) holds these
fingerprints: the rules depend on it, not on the raw files' dates.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from collections.abc import Sequence
from pathlib import Path

import h5py

SAMPLES = 16
SAMPLE_BYTES = 1 << 20
METHOD = (f"sha256 of size, HDF5 structure and {SAMPLES} evenly spaced {SAMPLE_BYTES >> 20} MiB samples of the "
          "bytes (not the date); identifies the file, does not prove it unchanged")


def _structure(path: Path) -> str:
    """Every dataset's name, shape, dtype, chunks, filters and virtual sources, as text ('' if not HDF5)."""
    if not h5py.is_hdf5(path):
        return ""
    lines: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            sources = [(v.file_name, v.dset_name) for v in obj.virtual_sources()] if obj.is_virtual else []
            lines.append(json.dumps([name, obj.shape, obj.dtype.str, obj.chunks, obj.compression,
                                     obj.compression_opts, sources], default=str))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return "\n".join(lines)


def content_fingerprint(path: str | Path) -> str:
    """SHA-256 (hex) of ``path``'s size, HDF5 structure and sampled bytes; no date."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(f"{size}\n{_structure(path)}\n".encode())
    with path.open("rb") as f:
        if size <= SAMPLES * SAMPLE_BYTES:
            h.update(f.read())
        else:
            step = (size - SAMPLE_BYTES) // (SAMPLES - 1)
            for i in range(SAMPLES):
                f.seek(i * step)
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def fingerprint(path: str | Path) -> dict[str, str | int]:
    """The fingerprint of ``path``: value, method, size and (for the record only) modification time."""
    path = Path(path)
    st = path.stat()
    return {"path": str(path.resolve()), "fingerprint": content_fingerprint(path), "method": METHOD,
            "size": st.st_size, "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds")}


def sha256_file(path: str | Path, block: int = 16 << 20) -> str:
    """SHA-256 of the whole file, read in blocks of ``block`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def input_files(raw: str | Path, flat_file: str | None, dark_file: str | None,
                parts: Sequence[str | Path] = ()) -> list[Path]:
    """The distinct files a scan is read from: ``raw``, every file a stitched scan is joined from (``parts``),
    and the flats' and darks' files."""
    out: list[Path] = []
    for p in (raw, *parts, flat_file, dark_file):
        if p and Path(p).resolve() not in [q.resolve() for q in out]:
            out.append(Path(p))
    return out


def sha256_line(path: str | Path) -> str:
    """One ``sha256sum``-style line for ``path`` (so ``sha256sum -c`` can check it)."""
    return f"{sha256_file(path)}  {os.fspath(Path(path).resolve())}\n"
