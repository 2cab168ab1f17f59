"""Atomic outputs: write under a temporary name in the same directory, rename when complete.

A job killed at any point leaves only a ``.<name>.tmp-<host>-<pid>`` file, which neither
Snakemake nor a user mistakes for the finished output. The next successful write of the same
output removes such leftovers, except those of a process still alive on this host (a job
orphaned by a killed Snakemake may still be writing the same output). A leftover from another
host is removed: its writer's liveness cannot be seen from here, and an orphan's result is no
longer needed (its rename then fails, and only that orphan).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def _writer_alive(suffix: str) -> bool:
    """Whether the writer named by a temporary's ``<host>-<pid>`` suffix runs on this host."""
    host, _, pid = suffix.rpartition("-")
    if host not in ("", socket.gethostname()) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _remove_leftovers(path)


def _remove_leftovers(path: Path) -> None:
    """Remove the temporaries other writers of ``path`` left (``path`` is complete now)."""
    for old in path.parent.glob(f".{path.name}.tmp-*"):
        if _writer_alive(old.name.rpartition(".tmp-")[2]):
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; replace ``path`` with it only if the block succeeds."""
    path = Path(path)
    tmp = _tmp_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_leftovers(path)
