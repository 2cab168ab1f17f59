"""What a volume records about how it was made: the full parameter set, the plan, versions, the input's identity.

Written into the output HDF5 (group ``/process/tomosnake``, and ``/tori`` when a
.tori file was the parameter source, as the beamline writes it) and beside it as
a Snakemake config file that repeats the run exactly:
``snakemake --snakefile <repo>/Snakefile --configfile <scan>_recon.yaml``.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from tomosnake import __version__
from tomosnake.io.atomic import write_text
from tomosnake.config import TomoConfig
from tomosnake.io.fingerprint import fingerprint, input_files
from tomosnake.stages.plan import Plan, resolve_center
from tomosnake.workflow import SNAKEFILE

GROUP = "process/tomosnake"
UNITS_UM = {"m": 1e6, "mm": 1e3, "cm": 1e4, "um": 1.0, "µm": 1.0, "micron": 1.0, "microns": 1.0,
            "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3}
PIXEL_SIZE_PATH = "measurement/instrument/detector/pixel_size"
DISTRIBUTIONS = ("numpy", "scipy", "h5py", "finufft", "algotom", "tomopy", "tomocupy", "snakemake", "pydantic")


def software_versions() -> dict[str, str]:
    """Versions of Python, HDF5 and the installed libraries a volume can depend on."""
    out = {"tomosnake": __version__, "python": platform.python_version(), "hdf5": h5py.version.hdf5_version}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def pixel_size_um(raw_path: str | Path) -> float | None:
    """The detector pixel size in micrometres, when the raw file gives it with a known unit (attribute ``units``)."""
    with h5py.File(raw_path, "r") as f:
        ds = f.get(PIXEL_SIZE_PATH)
        if not isinstance(ds, h5py.Dataset) or ds.size != 1:
            return None
        unit = ds.attrs.get("units", ds.attrs.get("unit"))
        unit = unit.decode() if isinstance(unit, bytes) else unit
        scale = UNITS_UM.get(str(unit).strip().lower()) if unit is not None else None
        return float(ds[()]) * scale if scale else None


def pixel_size(plan: Plan, cfg: TomoConfig) -> tuple[float | None, str]:
    """(pixel size in micrometres or None, where it comes from): the raw file's, or, when the file gives none
    with a unit, the one phase retrieval used (``preprocess.phase.pixel_size``, when enabled or given)."""
    um = pixel_size_um(plan.input)
    if um is not None:
        return um, "the raw file"
    phase = cfg.preprocess.phase
    if phase.enabled or "pixel_size" in phase.model_fields_set:
        return phase.pixel_size * 1e4, "preprocess.phase.pixel_size"  # cm
    return None, ""


def stitch_parts(cfg: TomoConfig) -> list[str]:
    """The files a stitched scan is joined from (none otherwise)."""
    return list(cfg.stitch.inputs) if cfg.stitch.enabled else []


def run_config(cfg: TomoConfig, plan: Plan) -> dict[str, Any]:
    """Every parameter of this scan's run, explicit (defaults and .tori values included): a config file."""
    out = cfg.model_dump(mode="json")
    out.update(input=[plan.input], tori=None)
    return out


def rerun_command(config_path: str | Path) -> str:
    return f"snakemake --snakefile {SNAKEFILE} --configfile {Path(config_path).resolve()}"


def write_config_file(cfg: TomoConfig, plan: Plan, path: str | Path) -> None:
    """The run's parameters as a Snakemake config file, with the command that repeats the run."""
    head = (f"# tomosnake {__version__}: every parameter of the run that made {plan.scan}_recon.h5\n"
            f"# (a .tori source is already merged in: {cfg.tori or 'none'}). Repeat it with\n"
            f"#   {rerun_command(path)} [--profile ...]\n")
    write_text(path, head + yaml.safe_dump(run_config(cfg, plan), sort_keys=False))


def _tori_value(val: Any) -> Any:
    if isinstance(val, list):
        try:
            arr = np.asarray(val)
        except ValueError:
            return json.dumps(val)
        return json.dumps(val) if arr.dtype == object or arr.size == 0 else arr
    return val


def write(f: h5py.File, cfg: TomoConfig, plan: Plan, conv_range: dict, config_path: str | Path | None,
          input_sha256: str | None = None) -> None:
    """Record the run's provenance in ``f``; small, so written as attributes and strings."""
    g = f.require_group(GROUP)
    center, method = resolve_center(plan, cfg)
    files = input_files(plan.input, cfg.datasets.flat_file, cfg.datasets.dark_file, stitch_parts(cfg))
    g.attrs.update({
        "version": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": yaml.safe_dump(run_config(cfg, plan), sort_keys=False),
        "plan": plan.to_json(),
        "conversion_range": json.dumps(conv_range),
        "center": center,
        "center_method": method,
        "software": json.dumps(software_versions()),
        "input_fingerprint": json.dumps([fingerprint(p) for p in files]),
    })
    if input_sha256:
        g.attrs["input_sha256"] = input_sha256
    if config_path is not None:
        g.attrs["rerun"] = rerun_command(config_path)
    data = f["exchange/data"]
    data.attrs.update({"axes": "z:y:x", "center": center, "center_method": method,
                       "conversion_range": json.dumps(conv_range)})
    if plan.info.get("pixel_size") is not None:
        data.attrs["pixel_size"] = plan.info["pixel_size"]  # as in the raw file
    um, source = pixel_size(plan, cfg)
    if um is not None:
        data.attrs.update(pixel_size_um=um, pixel_size_source=source)
    if cfg.tori:
        from tomosnake.io import tori

        # As the GUI writes it: every key, its defaults filled in (unknown keys were reported and dropped).
        for key, val in tori.provenance(tori.complete(tori.read(cfg.tori), cfg.tori)).items():
            f[f"tori/{key}"] = _tori_value(val)


def read(f: h5py.File) -> dict[str, Any]:
    """The provenance written by `write`, decoded."""
    a = f[GROUP].attrs
    out: dict[str, Any] = {k: a[k] for k in a}
    for key in ("plan", "conversion_range", "software", "input_fingerprint"):
        out[key] = json.loads(out[key])
    out["config"] = yaml.safe_load(out["config"])
    return out
