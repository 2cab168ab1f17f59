"""Identify an input file cheaply (a fingerprint) or exactly (a full SHA-256).

A full hash of a 10 TB scan reads all of it again: about 3 hours at 1 GB/s,
longer than the reconstruction. The fingerprint reads 16 MiB whatever the size:
SHA-256 over the file's size, modification time and 16 evenly spaced 1 MiB
samples of its bytes. It tells files apart that differ in size, date or any
sampled region (a different scan, a truncated copy, a rewritten header); it
cannot prove two files identical, so it is stored under the name
``fingerprint``, never ``checksum``. Where proof is needed, `sha256_file` runs
as its own job beside pre-processing (config ``output.input_sha256``).
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from collections.abc import Sequence
from pathlib import Path

SAMPLES = 16
SAMPLE_BYTES = 1 << 20
METHOD = (f"sha256 of size, mtime (ns) and {SAMPLES} evenly spaced {SAMPLE_BYTES >> 20} MiB samples of the bytes; "
          "identifies the file, does not prove it unchanged")


def fingerprint(path: str | Path) -> dict[str, str | int]:
    """The fingerprint of ``path``: value, method, size and modification time."""
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with path.open("rb") as f:
        if st.st_size <= SAMPLES * SAMPLE_BYTES:
            h.update(f.read())
        else:
            step = (st.st_size - SAMPLE_BYTES) // (SAMPLES - 1)
            for i in range(SAMPLES):
                f.seek(i * step)
                h.update(f.read(SAMPLE_BYTES))
    return {"path": str(path.resolve()), "fingerprint": h.hexdigest(), "method": METHOD, "size": st.st_size,
            "mtime": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds")}


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
