"""Remove a finished scan's intermediates without making Snakemake want to recompute them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def remove(paths: Iterable[str | Path]) -> int:
    """Delete files; return the bytes freed. Missing files are fine (a second cleanup is a no-op)."""
    freed = 0
    for p in map(Path, paths):
        if p.is_file():
            freed += p.stat().st_size
            p.unlink()
            log.info("removed %s", p)
    return freed
