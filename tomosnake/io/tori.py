"""The beamline's .tori parameter file (JSON written by the DanMAX TomoPy GUI) as a config source.

`read` parses a file and checks the type of every known key (`ToriError` names the file and key),
warns about unknown keys (`ToriWarning`) and never uses them. `to_config` maps a .tori onto
`tomosnake.config.TomoConfig`'s structure, the GUI's own defaults standing in for missing keys;
`config.load` puts explicit config values on top. `from_config` is the inverse, to record the
parameters a run actually used in the beamline's layout, and `provenance` flattens a .tori into
the ``/``-joined keys the beamline writes under ``tori/`` in its output files.

Known keys with no counterpart in the pipeline: ``recon_kwargs/ncore`` and ``nchunk`` (the GUI's
threading; the pipeline sets its own), ``correction_arguments/i0_correction`` (a leftover the GUI
never reads; ``normalize_i0`` is the flag), ``downscale_kwargs/chunks`` (HDF5 chunking of the
GUI's binned file), and the ``axis`` of ``pad_kwargs`` and ``outlier_removal_kwargs``, which must
hold the only values the GUI uses (2 and 0; anything else is rejected).

Mapped with a changed meaning: ``stripe_function`` holds TomoPy's names, each run as the same method in
algotom or the closest one, with a logged warning (`_stripe`; ``all_stripe``/``remove_all_stripe``, the
GUI's default, becomes the pipeline's ``profile`` method without the file's kwargs), and
stripe removal runs in the reconstruction stage on whole sinograms (after phase retrieval when that
is on); ring removal with all of ``ring_removal_kwargs`` null uses the pipeline's default method,
with any of them set TomoPy's ``remove_ring``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
ABSENT = object()  # default of a key the GUI writes only when the user set it


class ToriError(ValueError):
    """A .tori file that cannot be used; one line naming the file and the key."""


class ToriWarning(UserWarning):
    """Keys in a .tori file that the pipeline does not know and ignores."""


class _Bad(Exception):
    """Raised by a checker: the value's problem, without the key."""


Checker = Callable[[Any], Any]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad("must be true or false")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad("must be a string")
    return v


def _number(v: Any) -> float | int:
    if not _is_number(v):
        raise _Bad("must be a number")
    return v


def _int(v: Any) -> int:
    if _is_number(v) and float(v).is_integer():
        return int(v)
    raise _Bad("must be an integer")


def _optional(check: Checker) -> Checker:
    def run(v: Any) -> Any:
        return None if v is None else check(v)
    return run


def _choice(*options: str) -> Checker:
    def run(v: Any) -> str:
        if v not in options:
            raise _Bad(f"must be one of {', '.join(options)}")
        return v
    return run


def _only(value: int) -> Checker:
    def run(v: Any) -> int:
        if _is_number(v) and v == value:
            return value
        raise _Bad(f"must be {value}, the only value the GUI uses")
    return run


def _int_list(length: int | None = None) -> Checker:
    def run(v: Any) -> list[int]:
        what = f"a list of {length} integers" if length else "a non-empty list of integers"
        if not isinstance(v, list) or (length and len(v) != length) or not v:
            raise _Bad(f"must be {what}")
        try:
            return [_int(x) for x in v]
        except _Bad:
            raise _Bad(f"must be {what}") from None
    return run


def _number_list(v: Any) -> list[float | int]:
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise _Bad("must be a list of numbers")
    return v


def _ranges(v: Any) -> list[list[int]]:
    pair = _int_list(2)
    if not isinstance(v, list):
        raise _Bad("must be a list of [from, to] projection ranges")
    try:
        return [pair(r) for r in v]
    except _Bad:
        raise _Bad("must be a list of [from, to] projection ranges") from None


def _npad(v: Any) -> str | int:
    if v == "auto":
        return v
    try:
        return _int(v)
    except _Bad:
        raise _Bad("must be 'auto' or an integer") from None


def _kwargs(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or not all(x is None or isinstance(x, str | bool) or _is_number(x) for x in v.values()):
        raise _Bad("must be an object of numbers, strings, booleans or nulls")
    return dict(v)


# The GUI's keys: (checker, default) leaves and nested sections; defaults are the GUI's fresh tori.
SCHEMA: dict[str, Any] = {
    "file_definitions": {
        "data_file": (_str, ""),
        "data_path": (_str, "exchange/data"),
        "dark_file": (_str, ""),
        "dark_path": (_str, "exchange/data_dark"),
        "flat_file": (_str, ""),
        "flat_path": (_str, "exchange/data_white"),
        "slice_proj": (_int_list(3), [0, -1, 1]),
        "slice_ver": (_int_list(3), [0, -1, 1]),
        "slice_hor": (_int_list(3), [0, -1, 1]),
        "theta_source": (_choice("exchange", "calc"), "exchange"),
        "theta_start": (_number, 0),
        "theta_end": (_number, 180),
    },
    "correction_arguments": {
        "normalize_dark": (_bool, False),
        "normalize_flat": (_bool, False),
        "normalize_i0": (_bool, False),
        "normalize_to_unity": (_bool, False),
        "flatten_images": (_bool, False),
        "flatten_images_kwargs": {"flatten_size": (_optional(_int), None)},
        "crop": (_bool, False),
        "crop_kwargs": {"crop_ranges": (_int_list(4), [0, -1, 0, -1])},
        "outlier_removal": (_bool, False),
        "outlier_removal_kwargs": {"dif": (_number, 0.4), "size": (_int, 3), "axis": (_only(0), 0)},
        "stripe_removal": (_bool, False),
        "stripe_function": (_str, "all_stripe"),
        "stripe_removal_kwargs": (_kwargs, {"snr": 3, "la_size": 61, "sm_size": 21, "dim": 1}),
        "phase_retrieval": (_bool, False),
        "phase_retrieval_kwargs": {"pixel_size": (_number, 0.00055), "dist": (_number, 28),
                                   "energy": (_number, 20), "alpha": (_number, 0.002), "pad": (_bool, True)},
        "i0_correction": (_bool, False),
        "minus_log_before_phase": (_bool, False),
        "minus_log_after_phase": (_bool, False),
    },
    "reconstruction_arguments": {
        "recon_kwargs": {"center": (_optional(_number), None), "algorithm": (_str, "gridrec"),
                         "filter_name": (_str, "parzen"), "filter_par": (_number_list, ABSENT),
                         "ncore": (_optional(_int), 24), "nchunk": (_optional(_int), 1)},
        "pad": (_bool, True),
        "pad_kwargs": {"axis": (_only(2), 2), "npad": (_npad, "auto"),
                       "mode": (_choice("edge", "constant", "reflect"), "edge")},
        "sino_360_to_180": (_bool, False),
        "sino_360_to_180_old_center": (_optional(_number), None),
        "excluded_proj": (_ranges, []),
    },
    "post_recon_process_arguments": {
        "circ_mask": (_bool, False),
        "circ_mask_kwargs": {"ratio": (_number, 0.95), "val": (_number, 0)},
        "ring_removal": (_bool, False),
        "ring_removal_kwargs": {"thresh": (_optional(_number), None), "theta_min": (_optional(_number), None),
                                "rwidth": (_optional(_int), None)},
        "convert": (_bool, False),
        "convert_kwargs": {"min": (_optional(_number), None), "max": (_optional(_number), None),
                           "dtype": (_choice("float16", "uint16", "uint8", "float32"), "float16"),
                           "mode": (_choice("std", "minmax", "manual"), "std")},
        "downscale": (_bool, False),
        "downscale_kwargs": {"down_scale_factors": (_int_list(), [2, 4, 8, 16]),
                             "chunks": (_int_list(3), [100, 100, 100])},
    },
}


def _fill(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The known keys of ``given`` (already checked), the schema's defaults for the missing ones."""
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if isinstance(spec, dict):
            out[key] = _fill(spec, given.get(key, {}))
        elif key in given:
            out[key] = copy.deepcopy(given[key])
        elif spec[1] is not ABSENT:
            out[key] = copy.deepcopy(spec[1])
    return out


DEFAULTS: dict[str, Any] = _fill(SCHEMA, {})  # what the GUI writes for a fresh session


def _short(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(data: Any, schema: dict[str, Any], prefix: str, source: str, unknown: list[str]) -> dict[str, Any]:
    """Type-checked copy of the known keys of ``data``; unknown key paths are appended to ``unknown``."""
    if not isinstance(data, dict):
        where = f"key '{prefix.rstrip('/')}'" if prefix else "top level"
        raise ToriError(f"{source}: .tori {where} must be a JSON object, got {_short(data)}")
    out: dict[str, Any] = {}
    for key, val in data.items():
        spec = schema.get(key)
        path = prefix + key
        if spec is None:
            unknown.append(path)
        elif isinstance(spec, dict):
            out[key] = _check(val, spec, path + "/", source, unknown)
        else:
            try:
                out[key] = spec[0](val)
            except _Bad as bad:
                raise ToriError(f"{source}: .tori key '{path}' {bad}, got {_short(val)} "
                                f"({type(val).__name__})") from None
    return out


def _validated(tori: Any, source: str) -> tuple[dict[str, Any], list[str]]:
    unknown: list[str] = []
    return _check(tori, SCHEMA, "", source, unknown), unknown


def read(path: str | Path) -> dict[str, Any]:
    """Parse and type-check a .tori file; unknown keys raise a `ToriWarning` and are dropped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToriError(f"{path}: .tori file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ToriError(f"{path}: cannot read the .tori file ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ToriError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    tori, unknown = _validated(data, str(path))
    if unknown:
        warnings.warn(f"{path}: unknown .tori keys ignored: {', '.join(unknown)}", ToriWarning, stacklevel=2)
    return tori


def unknown_keys(tori: str | Path | dict[str, Any]) -> list[str]:
    """The ``/``-joined paths of the keys a .tori file (or its parsed JSON) holds that the pipeline ignores."""
    if not isinstance(tori, dict):
        try:
            tori = json.loads(Path(tori).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ToriError(f"{tori}: cannot read the .tori file ({err})") from None
    return _validated(tori, "<dict>")[1]


def complete(tori: dict[str, Any], source: str = "<dict>") -> dict[str, Any]:
    """The checked .tori with the GUI's defaults for every missing key and without unknown keys."""
    return _fill(SCHEMA, _validated(tori, source)[0])


def _file(value: str, data_file: str) -> str | None:
    """Flats/darks file: '' or the data file itself mean 'in the data file'."""
    return None if value in ("", data_file) else value


GUI_DEFAULT_STRIPE = "all_stripe"  # a fresh session's placeholder (no TomoPy function): remove_all_stripe's kwargs
_noted: set[str] = set()  # the notes already logged by this process


def _stripe(ca: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``preprocess.stripe`` from the GUI's stripe keys, and what to tell the user about it. The GUI lists
    TomoPy's function names: each runs as the same method in algotom or the closest one
    (`tomosnake.recon.stripe.TOMOPY`), the note saying which and what is not carried over; any other name
    runs as algotom's function of that name."""
    from tomosnake.recon.stripe import from_tomopy  # lazy: the recon package's imports are heavy

    name = ca["stripe_function"]
    function, kwargs, note = from_tomopy("remove_all_stripe" if name == GUI_DEFAULT_STRIPE else name,
                                         ca["stripe_removal_kwargs"])
    return {"enabled": ca["stripe_removal"], "function": function, "kwargs": kwargs}, note


def under(path: str | Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with the .tori at ``path`` underneath, ``cfg``'s values winning (`tomosnake.config.deep_merge`).
    Where the run still uses a TomoPy stripe function of the file that runs as another method, a warning says
    so (logged once per process)."""
    from tomosnake.config import deep_merge

    parsed = read(path)
    base = to_config(parsed, str(path))
    out = deep_merge(base, cfg)
    _, note = _stripe(complete(parsed, str(path))["correction_arguments"])
    stripe = (out.get("preprocess") or {}).get("stripe") or {}
    if note and stripe.get("enabled") and stripe.get("function") == base["preprocess"]["stripe"]["function"] \
            and note not in _noted:
        _noted.add(note)
        log.warning("%s: %s", path, note)
    return out


def to_config(tori: dict[str, Any], source: str = "<dict>") -> dict[str, Any]:
    """A partial config dict (TomoConfig's structure) with every .tori key mapped, GUI defaults for missing ones."""
    t = complete(tori, source)
    fd, ca = t["file_definitions"], t["correction_arguments"]
    ra, pp = t["reconstruction_arguments"], t["post_recon_process_arguments"]
    rk = ra["recon_kwargs"]
    recon: dict[str, Any] = {
        "minus_log": False,  # the GUI applies -log only where the two minus_log flags say
        "sino_360_to_180": {"enabled": ra["sino_360_to_180"], "old_center": ra["sino_360_to_180_old_center"]},
        "excluded_proj": [tuple(r) for r in ra["excluded_proj"]],
        "pad": {"enabled": ra["pad"], "npad": ra["pad_kwargs"]["npad"], "mode": ra["pad_kwargs"]["mode"]},
        "algorithm": rk["algorithm"],
        "filter_name": rk["filter_name"],
        "center": rk["center"],
        "ring_removal": {"enabled": pp["ring_removal"], **pp["ring_removal_kwargs"]},
        "circ_mask": {"enabled": pp["circ_mask"], **pp["circ_mask_kwargs"]},
        "convert": {"enabled": pp["convert"], **pp["convert_kwargs"]},
    }
    if "filter_par" in rk:
        recon["filter_par"] = rk["filter_par"]
    flatten: dict[str, Any] = {"enabled": ca["flatten_images"]}
    if ca["flatten_images_kwargs"]["flatten_size"] is not None:  # null: not set in the GUI, keep the model default
        flatten["size"] = ca["flatten_images_kwargs"]["flatten_size"]
    out: dict[str, Any] = {
        "datasets": {
            "data_path": fd["data_path"],
            "dark_file": _file(fd["dark_file"], fd["data_file"]), "dark_path": fd["dark_path"],
            "flat_file": _file(fd["flat_file"], fd["data_file"]), "flat_path": fd["flat_path"],
            "slice_proj": tuple(fd["slice_proj"]), "slice_ver": tuple(fd["slice_ver"]),
            "slice_hor": tuple(fd["slice_hor"]),
            "theta_source": fd["theta_source"], "theta_start": fd["theta_start"], "theta_end": fd["theta_end"],
        },
        "preprocess": {
            "flat_dark": {"normalize_dark": ca["normalize_dark"], "normalize_flat": ca["normalize_flat"]},
            "i0": {"enabled": ca["normalize_i0"], "source": "monitor"},
            "normalize_to_unity": {"enabled": ca["normalize_to_unity"]},
            "flatten": flatten,
            "crop": {"enabled": ca["crop"], "ranges": tuple(ca["crop_kwargs"]["crop_ranges"])},
            "outlier": {"enabled": ca["outlier_removal"], "dif": ca["outlier_removal_kwargs"]["dif"],
                        "size": ca["outlier_removal_kwargs"]["size"]},
            "stripe": _stripe(ca)[0],
            "minus_log_before_phase": ca["minus_log_before_phase"],
            "phase": dict(ca["phase_retrieval_kwargs"], enabled=ca["phase_retrieval"]),
            "minus_log_after_phase": ca["minus_log_after_phase"],
        },
        "recon": recon,
        "output": {"pyramid": sorted(set(pp["downscale_kwargs"]["down_scale_factors"])) if pp["downscale"] else []},
    }
    if fd["data_file"]:
        out["input"] = [fd["data_file"]]
    return out


def from_config(cfg: Any, data_file: str = "") -> dict[str, Any]:
    """The .tori (GUI layout, all keys) equivalent to a validated `TomoConfig`, for provenance."""
    from tomosnake.corrections.phase import alpha_of as phase_alpha

    t = copy.deepcopy(DEFAULTS)
    ds, pre, rec = cfg.datasets, cfg.preprocess, cfg.recon
    t["file_definitions"].update(
        data_file=data_file, data_path=ds.data_path, dark_file=ds.dark_file or data_file, dark_path=ds.dark_path,
        flat_file=ds.flat_file or data_file, flat_path=ds.flat_path, slice_proj=list(ds.slice_proj),
        slice_ver=list(ds.slice_ver), slice_hor=list(ds.slice_hor), theta_source=ds.theta_source,
        theta_start=ds.theta_start, theta_end=ds.theta_end)
    ca = t["correction_arguments"]
    ca.update(normalize_dark=pre.flat_dark.normalize_dark, normalize_flat=pre.flat_dark.normalize_flat,
              normalize_i0=pre.i0.enabled, normalize_to_unity=pre.normalize_to_unity.enabled,
              flatten_images=pre.flatten.enabled, flatten_images_kwargs={"flatten_size": pre.flatten.size},
              crop=pre.crop.enabled, crop_kwargs={"crop_ranges": list(pre.crop.ranges)},
              outlier_removal=pre.outlier.enabled, stripe_removal=pre.stripe.enabled,
              stripe_function=pre.stripe.function, stripe_removal_kwargs=dict(pre.stripe.kwargs),
              phase_retrieval=pre.phase.enabled, minus_log_before_phase=pre.minus_log_before_phase,
              minus_log_after_phase=pre.minus_log_after_phase)
    ca["outlier_removal_kwargs"].update(dif=pre.outlier.dif, size=pre.outlier.size)
    ca["phase_retrieval_kwargs"].update(pixel_size=pre.phase.pixel_size, dist=pre.phase.dist,
                                        energy=pre.phase.energy, pad=pre.phase.pad,
                                        alpha=(pre.phase.alpha if pre.phase.delta_beta is None  # TomoPy's alpha
                                               else phase_alpha(pre.phase.delta_beta)))
    ra = t["reconstruction_arguments"]
    ra["recon_kwargs"].update(center=rec.center, algorithm=rec.algorithm, filter_name=rec.filter_name)
    if getattr(rec, "filter_par", None) is not None:
        ra["recon_kwargs"]["filter_par"] = list(rec.filter_par)
    ra.update(pad=rec.pad.enabled, sino_360_to_180=rec.sino_360_to_180.enabled,
              sino_360_to_180_old_center=(None if rec.sino_360_to_180.old_center == "auto"
                                          else rec.sino_360_to_180.old_center),
              excluded_proj=[list(r) for r in rec.excluded_proj])
    ra["pad_kwargs"].update(npad=rec.pad.npad, mode=rec.pad.mode)
    pp = t["post_recon_process_arguments"]
    pp.update(circ_mask=rec.circ_mask.enabled, ring_removal=rec.ring_removal.enabled, convert=rec.convert.enabled,
              downscale=bool(cfg.output.pyramid))
    pp["circ_mask_kwargs"].update(ratio=rec.circ_mask.ratio, val=rec.circ_mask.val)
    pp["ring_removal_kwargs"].update(thresh=rec.ring_removal.thresh, theta_min=rec.ring_removal.theta_min,
                                     rwidth=rec.ring_removal.rwidth)
    pp["convert_kwargs"].update(min=rec.convert.min, max=rec.convert.max, dtype=rec.convert.dtype,
                                mode=rec.convert.mode)
    if cfg.output.pyramid:
        pp["downscale_kwargs"]["down_scale_factors"] = list(cfg.output.pyramid)
    return t


def provenance(tori: dict[str, Any]) -> dict[str, str | float | int | bool | list]:
    """The .tori flattened into ``/``-joined keys, None values skipped, as written under ``tori/`` at the beamline."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, val in node.items():
            if isinstance(val, dict):
                walk(val, f"{prefix}{key}/")
            elif val is not None:
                out[prefix + key] = [list(v) if isinstance(v, tuple) else v for v in val] \
                    if isinstance(val, list | tuple) else val
    walk(tori, "")
    return out
