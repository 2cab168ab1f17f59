"""Checks run before any job is queued, in the main Snakemake process, from metadata, the flats and a few frames.

`check` validates the config (a .tori underneath, `config.load`), refuses inputs lying where the workflow
writes (`guard`), a backend the jobs' Python lacks (without ``--sdm``) and existing read-only folders of the
outdir, then for every scan: its
datasets (dtype, virtual sources), shapes, angles, flats and darks (`RawScan`, `RawScan.check_flats`),
a few sampled projections (`RawScan.check_data`), the backend, a configured centre, excluded
projections, the width and the memory budget, by running the planner itself (`plan.make_plan`)
without its automatic centre search, so only the sampled projections are read; finally the free disk for the
intermediates and outputs the plans' estimates call for. Every failure is a `PreflightError`
whose text is one line naming the file, dataset or config key; `check_or_exit` prints that
line and exits non-zero, which is what the Snakefile calls at parse time. Input that is usable but
odd (angles read as radians, some all-zero frames) gives warnings instead (`Plan.warnings`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tomosnake import config as tconfig
from tomosnake import guard
from tomosnake.config import OutputConfig, TomoConfig, scan_name
from tomosnake.analysis import layout as analysis_layout
from tomosnake.paths import RUN_DIRS, ScanFiles
from tomosnake.placement import GPU_BACKENDS
from tomosnake.stages.plan import Plan, make_plan
from tomosnake.stages.preprocess_chunk import MemoryBudgetError
from tomosnake.recon.backends import BackendUnavailable, require_backend
from tomosnake.io.stitched_scan import stitched_input

MB = 1 << 20
DISK_MARGIN_BYTES = 256 * MB  # logs, plan, VDS, report, .snakemake metadata


class PreflightError(Exception):
    """Input that cannot run; the text is one line naming the file, dataset or config key."""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def scans(cfg: TomoConfig) -> dict[str, str]:
    """Scan name -> raw file, in config order; two inputs with one name are an error.

    With ``stitch.enabled`` the one scan is joined from ``stitch.inputs`` and named after the first.
    """
    if cfg.stitch.enabled:
        first = stitched_input(cfg)
        return {scan_name(first): first}
    if not cfg.input:
        raise tconfig.ConfigError("config key 'input': no scan given (--config input=PATH, or a .tori "
                                  "whose data_file names one)")
    named: dict[str, str] = {}
    for path in cfg.input:
        name = scan_name(path)
        if name in named:
            raise tconfig.ConfigError(f"config key 'input': {named[name]!r} and {path!r} share the name {name!r}")
        named[name] = path
    return named


def plan_scan(cfg: TomoConfig, path: str, name: str) -> Plan:
    """The scan's plan as the checkpoint will make it, less the automatic centre (k, j and estimates
    do not depend on it; the plan job finds it): checks the datasets, sampled frames, flats, backend,
    centre and memory budget."""
    try:  # without the centre search, the only step that reads many projections; the plan job finds it
        return make_plan(cfg, path, name, search=False)
    except MemoryBudgetError as err:
        raise PreflightError(f"{path}: config key '{cfg.budget_key('preprocess')}': {cfg.budget_mb('preprocess'):g} MB "
                             f"less 'overhead_mb' {cfg.overhead_mb:g} MB is too small: {err}") from None
    except (ValueError, OSError, BackendUnavailable) as err:
        text = str(err)
        raise PreflightError(text if path in text else f"{path}: {text}") from None


def _extra_outputs(output: OutputConfig) -> float:
    """Further outputs as a multiple of the volume: pyramid levels, TIFFs, an OME-Zarr copy."""
    levels = sum(1 / f**3 for f in output.pyramid)
    return levels + float(output.tiff) + (1 + levels) * float(output.ome_zarr)


def storage(estimates: Mapping[str, float], output: OutputConfig) -> dict[str, int]:
    """Bytes of a scan's files from its plan's estimates: 'preprocessed' and 'recon_chunks' (the
    intermediates, 'intermediate' together), 'final' (the volume: a physical copy, or the recon chunks a
    virtual one maps; with its pyramid levels and the copies ``output`` asks for) and 'peak', all at once."""
    pre, chunks = int(estimates["preprocessed_bytes"]), int(estimates["recon_chunk_bytes"])
    physical = output.combine == "physical"
    extra = int(estimates["volume_bytes"] * (physical + _extra_outputs(output)))  # written beyond the chunks
    return {"preprocessed": pre, "recon_chunks": chunks, "intermediate": pre + chunks,
            "final": extra if physical else chunks + extra, "peak": pre + chunks + extra}


def _glob(pattern: str) -> list[Path]:
    p = Path(pattern)
    return list(p.parent.glob(p.name))


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def disk_need(plan: Plan, cfg: TomoConfig, scan_dir: str | Path) -> int:
    """Bytes the scan still has to write at its peak: preprocessed chunks, recon chunks, volume and
    further outputs, less the chunk and volume files already there.

    Once cleanup has run, Snakemake does not rebuild the removed intermediates, so they are not counted.
    """
    f = ScanFiles(str(scan_dir), plan.scan)
    s = storage(plan.estimates, cfg.output)
    need = s["peak"] + analysis_layout.disk_bytes(plan, cfg)
    have = _size([*_glob(f.recon_chunk("*")), Path(f.volume)])
    if Path(f.cleanup_done).exists():
        need -= s["preprocessed"]
    else:
        have += _size(_glob(f.preproc_chunk("*")))
    return max(0, need - have)


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_disk(outdir: str | Path, need: int) -> None:
    """Fail unless ``outdir`` (or the folder it will be made in) is writable with ``need`` bytes free."""
    base = _existing_parent(Path(outdir))
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise PreflightError(f"config key 'outdir': cannot write in {base}")
    free = shutil.disk_usage(base).free
    if need + DISK_MARGIN_BYTES > free:
        raise PreflightError(f"config key 'outdir': {outdir} has {free / 1e9:.2f} GB free; the intermediates and "
                             f"outputs need {(need + DISK_MARGIN_BYTES) / 1e9:.2f} GB (set 'disk_check: false' "
                             f"to skip this check)")


def check_writable(outdir: str | Path, scans: Iterable[str]) -> None:
    """Fail unless the folders the run writes in that exist already (the outdir, its state, each scan's folder
    and its subfolders) are writable folders: a read-only one would fail a job, not the run's start."""
    out = Path(outdir).absolute()
    folders = [out, *(out / d for d in RUN_DIRS)]
    for scan in scans:
        f = ScanFiles.under(str(out), scan)
        folders += [Path(f.dir), *map(Path, f.managed_dirs.values())]
    for d in folders:
        if d.exists() and not (d.is_dir() and os.access(d, os.W_OK | os.X_OK)):
            why = "is not a folder" if not d.is_dir() else "is read-only"
            raise PreflightError(f"config key 'outdir': {d} {why}; the run writes there")


def check_backend_here(cfg: TomoConfig) -> None:
    """Fail unless this Python, the one every job runs in when Snakemake deploys no software of its own (no
    ``--sdm``), has the reconstruction backend: otherwise every reconstruction job would fail, and be retried,
    for nothing. A CPU backend must load here; a GPU backend (TomocuPy) must be installed (its compiled part
    loads only where the GPU is)."""
    name = cfg.recon.backend
    try:
        require_backend(name, load=name not in GPU_BACKENDS)
    except BackendUnavailable as err:
        raise PreflightError(f"config key 'recon.backend': {_one_line(str(err))}; the jobs run in this Python "
                             f"(without --sdm conda, which gives them the backend's env)") from None


def check(raw: Mapping[str, Any], jobs_share_env: bool = False,
          configfiles: Iterable[str | os.PathLike] = ()) -> dict[str, Plan]:
    """Every check, in order; returns each scan's plan (without the automatic centre).

    First of all, no input (``configfiles`` included) may lie where the workflow writes (`guard`).
    ``jobs_share_env``: the jobs run in this Python environment (no ``--sdm``), so a backend that is not
    installed here, or a CPU backend that does not load here (a TomoPy without its compiled libraries), is
    refused now, not after preprocessing (`check_backend_here`).
    Raises `PreflightError` with one line naming the file, dataset or key.
    """
    try:
        cfg = tconfig.load(dict(raw))
        named = scans(cfg)
        guard.check_outside(cfg, named, configfiles)
    except ValueError as err:  # ConfigError, ToriError, InputInOutdir
        raise PreflightError(_one_line(str(err))) from None
    if jobs_share_env:
        check_backend_here(cfg)
    check_writable(cfg.outdir, named)
    plans = {name: plan_scan(cfg, path, name) for name, path in named.items()}
    for name, p in plans.items():
        try:
            analysis_layout.check(cfg, p, ScanFiles.under(cfg.outdir, name).volume)
        except analysis_layout.AnalysisError as err:
            raise PreflightError(_one_line(str(err))) from None
    if cfg.disk_check:
        check_disk(cfg.outdir, sum(disk_need(p, cfg, Path(cfg.outdir) / name) for name, p in plans.items()))
    return plans


def check_or_exit(raw: Mapping[str, Any], jobs_share_env: bool = False,
                  configfiles: Iterable[str | os.PathLike] = ()) -> None:
    """`check`; on failure print its one line to stderr and exit with status 1 (no traceback).

    The plans' warnings (input that is usable, but odd) are printed one line each and the run goes on.
    """
    try:
        plans = check(raw, jobs_share_env, configfiles)
    except PreflightError as err:
        print(f"tomosnake: {_one_line(str(err))}", file=sys.stderr, flush=True)
        sys.exit(1)
    for plan in plans.values():
        for warning in plan.warnings:
            print(f"tomosnake: warning: {_one_line(warning)}", file=sys.stderr, flush=True)
