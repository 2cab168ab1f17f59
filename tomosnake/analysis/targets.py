"""The analysis's files as the rules name them (rules/analysis.smk): jobs' inputs, targets, report inputs."""

from __future__ import annotations

from tomosnake.analysis.layout import Layout
from tomosnake.config import TomoConfig
from tomosnake.paths import ScanFiles


def chunk_files(files: ScanFiles, lay: Layout) -> list[str]:
    """The analyze_chunk files analysis_merge joins."""
    return [files.analysis_chunk(j) for j in range(len(lay.jobs))]


def slabs(lay: Layout, job: int) -> list[list[int]]:
    """The slices of job ``job``'s slabs (its params: a new layout, from another budget, reruns the job)."""
    u0, u1 = lay.jobs[job]
    return [list(lay.units[u]) for u in range(u0, u1)]


def outputs(cfg: TomoConfig, files: ScanFiles) -> list[str]:
    """The analysis outputs of a scan the config asks for (none when analysis is off)."""
    if not cfg.analysis.enabled:
        return []
    return [files.analysis_json, *([files.labels_ome_zarr] if cfg.output.ome_zarr else [])]


def report_inputs(cfg: TomoConfig, files: ScanFiles) -> dict[str, str]:
    """What the report reads of the analysis, by name (none when analysis is off)."""
    return {"analysis": files.analysis_json, "labels": files.labels} if cfg.analysis.enabled else {}
