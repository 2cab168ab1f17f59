"""The run never writes, moves or deletes one of its inputs.

An input (a scan, a stitched part, an external flat or dark file, the .tori, a config file) that lies
where the workflow writes in the output directory (`tomosnake.paths`: the scan folders' managed files
and folders, and the outdir's own `RUN_DIRS`) would be overwritten, deleted or replaced by its own
alias; `check_outside` refuses it before anything runs, comparing the path as given, the path it
resolves to (symlinks) and, for a managed file that exists, its inode (hard links). Cleanup asks
`is_input` for each path before it deletes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tomosnake.config import TomoConfig
from tomosnake.paths import RUN_DIRS, ScanFiles


class InputInOutdir(ValueError):
    """An input lies where the workflow writes; the text is one line naming the key, the file and the place."""


def run_inputs(cfg: TomoConfig, configfiles: Iterable[str | os.PathLike] = ()) -> list[tuple[str, str]]:
    """(config key, path) of every file the run reads from outside its outdir."""
    out = [("input", p) for p in cfg.input] + [("stitch.inputs", p) for p in cfg.stitch.inputs]
    out += [(f"datasets.{key}", p) for key in ("flat_file", "dark_file")
            if (p := getattr(cfg.datasets, key))]
    out += [("tori", cfg.tori)] if cfg.tori else []
    return out + [("config file", str(p)) for p in configfiles]


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _same_inode(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def managed(outdir: str | os.PathLike, scans: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(files, folders) the workflow writes in ``outdir`` for ``scans``, absolute, each keyed by what it is."""
    out = os.path.abspath(outdir)
    files: dict[str, str] = {}
    dirs = {f"the run's {d}/": os.path.join(out, d) for d in RUN_DIRS}
    for scan in scans:
        f = ScanFiles.under(out, scan)
        files |= {f"scan {scan}'s {what}": path for what, path in f.managed_files.items()}
        dirs |= {f"scan {scan}'s {what} folder": path for what, path in f.managed_dirs.items()}
    return files, dirs


def place_of(path: str, files: dict[str, str], dirs: dict[str, str]) -> str | None:
    """Which managed file or folder ``path`` is, lies in or is a hard link of; None if none."""
    given, real = os.path.abspath(path), os.path.realpath(path)
    for what, folder in dirs.items():
        if _under(given, folder) or _under(real, os.path.realpath(folder)):
            return f"{what} ({folder})"
    for what, file in files.items():
        if given == file or real == os.path.realpath(file) or _same_inode(real, file):
            return f"{what} ({file})"
    return None


def check_outside(cfg: TomoConfig, scans: Iterable[str], configfiles: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an input of the run that lies where the workflow writes, with one line."""
    scans = list(scans)
    files, dirs = managed(cfg.outdir, scans)
    # The volume's config file repeats the run (its header says how): given as a config file it is read, and
    # combine rewrites it from the very parameters read from it, so it is the one managed file allowed.
    rerun = {os.path.realpath(ScanFiles.under(os.path.abspath(cfg.outdir), s).volume_config) for s in scans}
    for key, path in run_inputs(cfg, configfiles):
        if key == "config file" and os.path.realpath(path) in rerun:
            continue
        place = place_of(path, files, dirs)
        if place:
            raise InputInOutdir(f"config key '{key}': {os.path.abspath(path)} lies where the workflow writes: "
                                f"{place}, which the run overwrites or deletes; move the file out of it or "
                                f"choose another 'outdir'")


def is_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` is (or resolves to, or is a hard link of) one of ``inputs``."""
    real = os.path.realpath(path)
    return any(real == os.path.realpath(p) or _same_inode(real, p) for p in inputs)


def input_paths(cfg: TomoConfig) -> list[str]:
    """The paths of `run_inputs` (config files aside: the resolved config is in the outdir)."""
    return [p for _, p in run_inputs(cfg)]


def protected(paths: Iterable[Path], inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(paths that may be removed, paths that are inputs and must not be)."""
    paths, inputs = list(paths), list(inputs)
    keep = [p for p in paths if is_input(p, inputs)]
    return [p for p in paths if p not in keep], keep
