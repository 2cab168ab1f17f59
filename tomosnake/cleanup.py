"""Remove a finished scan's intermediates without making Snakemake want to recompute them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tomosnake.plan import Plan

log = logging.getLogger(__name__)


def intermediates(plan: Plan, scan_dir: str | Path, keep_recon: bool) -> list[Path]:
    """The files a finished scan no longer needs: preprocessed chunks, their VDS, and recon chunks
    unless the final volume is a VDS over them."""
    d = Path(scan_dir)
    files = [d / "preproc" / f"chunk_{k}.h5" for k in range(plan.k)] + [d / "preproc.vds.h5"]
    if not keep_recon:
        files += [d / "recon" / f"recon_{j}.h5" for j in range(plan.j)]
    return files


def remove(paths: Iterable[str | Path]) -> int:
    """Delete files; return the bytes freed. Missing files are fine (a second cleanup is a no-op)."""
    freed = 0
    for p in map(Path, paths):
        if p.is_file():
            freed += p.stat().st_size
            p.unlink()
            log.info("removed %s", p)
    return freed
