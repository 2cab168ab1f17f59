"""Remove a finished scan's intermediates without making Snakemake want to recompute them.

Removed: the pre-processed chunk files and their VDS, the reconstruction chunk files
unless the volume is a VDS over them, temporary files that killed jobs left beside
those (``.<name>.tmp-<pid>``, see `tomosnake.io.atomic`), and the SLURM executor's logs
of this scan's successful jobs (the executor deletes them itself unless told to keep
them or stopped early). Kept: the volume, its copies, the report, the plan, the
conversion range, benchmarks, the jobs' own logs and timing records, and every log
of a failed job, and any path that is (or resolves to, or is a hard link of) one of the run's inputs
(`tomosnake.guard`; preflight refuses such inputs, this is the last line). Snakemake does not
rebuild a deleted intermediate while everything downstream of it is up to date, so a dry run
afterwards has nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tomosnake.guard import protected
from tomosnake.paths import ScanFiles
from tomosnake.stages.plan import Plan

log = logging.getLogger(__name__)

# Where snakemake-executor-plugin-slurm writes job logs: the profiles' `slurm-logdir`, and its default.
SLURM_LOG_DIRS = ("logs/slurm", ".snakemake/slurm_logs")
SLURM_SUCCESS = "steps (100%) done"


def intermediates(plan: Plan, scan_dir: str | Path, keep_recon: bool) -> list[Path]:
    """The files a finished scan no longer needs: preprocessed chunks, their VDS, and recon chunks
    unless the final volume is a VDS over them."""
    f = ScanFiles(str(scan_dir), plan.scan)
    files = [f.preproc_chunk(k) for k in range(plan.k)] + [f.preproc_vds]
    if not keep_recon:
        files += [f.recon_chunk(j) for j in range(plan.j)]
    return [Path(p) for p in files]


def leftover_temporaries(files: Iterable[Path]) -> list[Path]:
    """Temporary files of interrupted writes of ``files`` (no job writes them any more)."""
    out: list[Path] = []
    for f in files:
        out += sorted(f.parent.glob(f".{f.name}.tmp-*")) if f.parent.is_dir() else []
    return out


# Rules with a chunk wildcard after the scan: their SLURM log folder is "<scan>_<chunk>", every other
# rule's is "<scan>". Knowing the rule tells scan "s" chunk 1 ("s_1") from scan "s_1" ("s_1" or "s_1_0").
CHUNK_RULES = ("preprocess_chunk", "recon_chunk")


def _is_scan_job(rule_dir: str, wildcards_dir: str, scan: str) -> bool:
    """Whether a SLURM log folder (``rule_<rule>/<wildcard values joined by '_'>``) holds ``scan``'s jobs."""
    if rule_dir.removeprefix("rule_") in CHUNK_RULES:
        name, _, chunk = wildcards_dir.rpartition("_")
        return name == scan and chunk.isdigit()
    return wildcards_dir == scan


def successful_slurm_logs(workdir: str | Path, scan: str) -> list[Path]:
    """SLURM logs of ``scan``'s jobs that finished successfully (Snakemake's jobstep logged 100 % done,
    no error); a log that does not say so is kept."""
    out = []
    for rel in SLURM_LOG_DIRS:
        root = Path(workdir) / rel
        for p in sorted(root.glob("rule_*/*/*.log")) if root.is_dir() else []:
            if _is_scan_job(p.parent.parent.name, p.parent.name, scan):
                text = p.read_text(errors="replace")
                if SLURM_SUCCESS in text and "Error" not in text:
                    out.append(p)
    return out


def remove(paths: Iterable[str | Path]) -> tuple[int, int]:
    """Delete files; return (files removed, bytes freed). Missing files are fine (a second cleanup is a no-op)."""
    count = freed = 0
    for p in map(Path, paths):
        if p.is_file():
            freed += p.stat().st_size
            p.unlink()
            count += 1
            log.info("removed %s", p)
    return count, freed


def prune_empty_dirs(dirs: Iterable[Path]) -> None:
    """Remove the given directories, and their emptied parents up to the first non-empty one, if empty."""
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        while d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent


def clean(plan: Plan, scan_dir: str | Path, keep_recon: bool, workdir: str | Path,
          inputs: Iterable[str | Path] = ()) -> str:
    """Remove everything `intermediates`, `leftover_temporaries` and `successful_slurm_logs` name, except
    ``inputs``; a summary."""
    inputs = list(inputs)
    files, kept = protected(intermediates(plan, scan_dir, keep_recon), inputs)
    temps, kept_temps = protected(leftover_temporaries(files), inputs)
    logs, kept_logs = protected(successful_slurm_logs(workdir, plan.scan), inputs)
    for p in (*kept, *kept_temps, *kept_logs):
        log.warning("kept %s: it is an input of the run", p)
    n_files, freed = remove(files)
    n_temps, freed_temps = remove(temps)
    remove(logs)
    f = ScanFiles(str(scan_dir), plan.scan)
    prune_empty_dirs([Path(f.preproc_chunk(0)).parent, Path(f.recon_chunk(0)).parent, *(p.parent for p in logs)])
    return (f"removed {n_files} intermediate files, {n_temps} leftover temporaries and {len(logs)} SLURM logs "
            f"of successful jobs: {freed + freed_temps} bytes"
            + ("; reconstruction chunks kept (the volume is a VDS over them)" if keep_recon else "") + "\n")
