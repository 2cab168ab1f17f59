"""The config model described, for people: every key with its default and meaning, generated from
`tomosnake.config.TomoConfig` (`keys`), as the key list of ``tomosnake run --help`` and as the commented
config ``tomosnake init`` writes (`commented_config`).

A key's meaning is its pydantic ``description``; a section's ``enabled`` says it turns the section on; the keys
whose field has no description yet are explained in `MEANINGS` (tests/test_cli.py fails on a key with neither).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tomosnake.config import TomoConfig

MEANINGS: dict[str, str] = {
    "tori": "the beamline GUI's .tori file: its parameters (and data file) underneath this config",
    "outdir": "output directory; each scan gets <outdir>/<scan name>/",
    "threads": "threads per job",
    "disk_check": "refuse a run whose outputs would not fit on the output directory's disk",
    "datasets.data_path": "projections dataset in the raw file",
    "datasets.flat_file": "file holding the flats; null: the raw file",
    "datasets.flat_path": "flats dataset",
    "datasets.dark_file": "file holding the darks; null: the raw file",
    "datasets.dark_path": "darks dataset",
    "datasets.theta_path": "rotation angles dataset (degrees)",
    "datasets.theta_source": "exchange: angles read from theta_path; calc: evenly from theta_start to theta_end",
    "datasets.theta_start": "first angle when theta_source is calc, degrees",
    "datasets.theta_end": "last angle when theta_source is calc, degrees",
    "datasets.i0_path": "beam monitor dataset (I0 correction, source monitor)",
    "datasets.slice_proj": "[start, stop, step] of the projections used (stop -1: to the end)",
    "datasets.slice_ver": "[start, stop, step] of the detector rows used",
    "datasets.slice_hor": "[start, stop, step] of the detector columns used",
    "stitch.position_path": "lateral motor position dataset in each file",
    "preprocess.flat_dark.normalize_dark": "subtract the darks",
    "preprocess.flat_dark.normalize_flat": "divide by the flats",
    "preprocess.flat_dark.method": "how the flat and dark frames are averaged: mean or median",
    "preprocess.i0.source": "beam intensity from the monitor, from air columns at the edges, or auto",
    "preprocess.flatten.size": "smoothing window of the background flattening, pixels",
    "preprocess.outlier.dif": "a pixel differing from its median by more than this is replaced",
    "preprocess.outlier.size": "median window of the outlier removal, pixels",
    "preprocess.crop.ranges": "[top, bottom, left, right] kept of each projection (half-open, -1: to the end)",
    "preprocess.background.air": "columns at each side taken as air",
    "preprocess.minus_log_before_phase": "apply -log before phase retrieval",
    "preprocess.phase.pad": "pad the projections before phase retrieval",
    "preprocess.minus_log_after_phase": "apply -log after phase retrieval",
    "recon.minus_log": "apply -log before reconstruction; auto: unless preprocessing did",
    "recon.excluded_proj": "[from, to) ranges of projections left out of the reconstruction",
    "recon.pad.enabled": "pad the sinograms' columns before reconstruction",
    "recon.pad.npad": "columns added each side; auto: a quarter of the width",
    "recon.pad.mode": "padding: edge, constant or reflect",
    "recon.backend": "reconstruction code: gridrec (built in), tomopy, tomocupy (GPU) or algotom",
    "recon.algorithm": "the backend's algorithm (e.g. gridrec, fbp)",
    "recon.center_search.method": "how the plan finds the centre: opposite projections compared",
    "recon.ring_removal.method": "consistent (rings alike in all sectors) or tomopy; null: see thresh",
    "recon.ring_removal.thresh": "TomoPy remove_ring thresh (setting it selects method tomopy)",
    "recon.ring_removal.theta_min": "TomoPy remove_ring theta_min",
    "recon.ring_removal.rwidth": "TomoPy remove_ring rwidth",
    "recon.circ_mask.ratio": "radius of the circular mask, as a fraction of the half width",
    "recon.circ_mask.val": "value outside the mask",
    "recon.convert.dtype": "data type of the volume",
    "recon.convert.mode": "grey-value range: std (mean +- n_sigma std), minmax, or manual (min, max)",
    "recon.convert.min": "lowest grey value kept (mode manual)",
    "recon.convert.max": "highest grey value kept (mode manual)",
    "recon.convert.n_sigma": "standard deviations each side of the mean (mode std)",
    "output.pyramid": "downscaled copies of the volume by these factors, e.g. [2, 4]",
    "output.ome_zarr": "also write the volume as OME-Zarr",
    "output.tiff": "also write the volume as a TIFF stack",
    "report": "write the PDF report",
    "cleanup": "remove intermediate files once the volume is written",
    "center_try.step": "pixels between the centres tried",
    "slurm.cpu_partition": "SLURM partition of the CPU jobs",
    "slurm.gpu_partition": "SLURM partition of the GPU jobs",
    "slurm.account": "SLURM account (-A); null: none",
    "slurm.qos": "SLURM quality of service; null: none",
    "fault.rule": "test hook: the rule whose chunk job fails; null: none",
    "fault.chunk": "test hook: which chunk fails",
    "fault.kind": "test hook: raise an error or kill the process",
}


@dataclass(frozen=True)
class Key:
    """One config key: its dotted name, its default (JSON-able) and its meaning."""

    name: str
    default: Any
    meaning: str


def _title(model: type[BaseModel], name: str) -> str:
    doc = (model.__doc__ or "").strip()
    first = doc.split("\n\n")[0].replace("\n", " ")
    return first if doc and not first.startswith("Base:") else name.replace("_", " ")


def sections() -> Iterator[tuple[str, str]]:
    """(dotted name, meaning) of every section (nested model) of the config, outermost first."""
    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield prefix + name, _title(sub, name)
                yield from walk(sub, f"{prefix}{name}.")
    return walk(TomoConfig, "")


def keys() -> list[Key]:
    """Every key of the config (leaves of the model), in the model's order, with the model's defaults."""
    defaults = TomoConfig().model_dump(mode="json")
    out: list[Key] = []

    def walk(model: type[BaseModel], prefix: str, values: dict[str, Any]) -> None:
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                walk(sub, f"{prefix}{name}.", values[name])
                continue
            dotted = prefix + name
            meaning = field.description or MEANINGS.get(dotted) or \
                (f"turn {prefix.rstrip('.')} on" if name == "enabled" else "")
            out.append(Key(dotted, values[name], meaning))
    walk(TomoConfig, "", defaults)
    return out


def _yaml(value: Any) -> str:
    """A value as YAML flow text (JSON is YAML)."""
    return "[]" if value == [] else "{}" if value == {} else json.dumps(value)


def commented_config() -> str:
    """A config file holding every key, its default and its meaning: ``input`` and ``outdir`` set, every other key
    commented out at its default (uncomment a section's line and the key's to change it), so that the file
    restates nothing over a .tori and runs as written once ``input`` is filled in."""
    lines = ["# tomosnake configuration, written by `tomosnake init`: every key with its default and meaning.",
             "# Run: tomosnake run --profile local --configfile THIS_FILE  (or snakemake --profile local ...).",
             "# To change a key, remove the leading '# ' of its line and of its sections' lines.",
             "", "input: []  # the raw scan files (DXchange HDF5): fill in, e.g. [/data/scan_001.h5]",
             "outdir: results  # output directory; each scan gets <outdir>/<scan name>/", ""]
    titles = dict(sections())
    opened: set[str] = set()
    for key in keys():
        if key.name in ("input", "outdir"):
            continue
        parts = key.name.split(".")
        for depth in range(1, len(parts)):
            section = ".".join(parts[:depth])
            if section not in opened:
                opened.add(section)
                pad = "  " * (depth - 1)
                lines += ([""] if depth == 1 else []) + [f"# {pad}{parts[depth - 1]}:  # {titles[section]}"]
        pad = "  " * (len(parts) - 1)
        lines.append(f"# {pad}{parts[-1]}: {_yaml(key.default)}  # {key.meaning}")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """The workflow's own keys for ``tomosnake run --help``: name, default, meaning."""
    width = max(len(k.name) for k in keys())
    rows = [f"  {k.name:<{width}}  {_yaml(k.default):<14} {k.meaning}" for k in keys()]
    return "\n".join(rows)
