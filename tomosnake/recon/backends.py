"""Reconstruction backends behind one small interface.

A backend is a function ``(sino, theta_rad, center, n_out, algorithm, filter_name, threads, **params)
-> (n_slices, n_out, n_out) float32`` where ``sino`` is (n_proj, n_slices, width) float32 (already
-log, stitched and padded), ``center`` the rotation axis in its columns, ``params`` the algorithm's
own parameters that are set, with TomoPy's names and meaning (`tomosnake.config.ALGORITHM_PARAMS`;
only those the backend honours for that algorithm, `Backend.params`: the plan refuses the others), and
the output grid is centred on the axis in the geometry of `tomosnake.phantom` (s = x cos(theta) +
y sin(theta), x along columns, y along rows, both increasing with the index).  The default backend
writes its slices in TomoPy's orientation (image rows run along -y); TomoPy's, algotom's and
TomocuPy's slices are used as they come, nothing is flipped: the orientations agree.  TomoPy's
gridrec puts the axis on pixel ceil(n/2) rather than (n-1)/2 (half a pixel off for even n, one for
odd); the `tomopy` backend keeps that, being TomoPy's own output (benchmarks/tomopy_parity.py).
Algorithm "gridrec" means each backend's Fourier method (TomocuPy fourierrec, algotom dfi);
the default backend's "fbp" is the same filtered backprojection as its "gridrec".
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomosnake.config import ALGORITHM_PARAMS
from tomosnake.recon import gridrec

if TYPE_CHECKING:
    from types import ModuleType

Reconstructor = Callable[..., np.ndarray]


class BackendUnavailable(RuntimeError):
    """A configured backend cannot run here; the message says which environment provides it."""


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # what must be importable
    provider: str  # where it comes from, for the error message
    algorithms: tuple[str, ...]
    filters: tuple[str, ...]
    run: Reconstructor
    command: str | None = None  # an executable that must be on PATH too
    params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per algorithm: the parameters it honours
    sizes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # per algorithm: values a list param needs
    load: Callable[[], object] | None = None  # imports the compiled part; raises ImportError or OSError


def _centre_crop(rec: np.ndarray, n_out: int) -> np.ndarray:
    """The central n_out x n_out of slices whose grid centre is the rotation axis."""
    n = rec.shape[-1]
    a = (n - n_out) // 2
    return rec[:, a:a + n_out, a:a + n_out]


def _run_gridrec(sino, theta, center, n_out, algorithm, filter_name, threads, filter_par=None):
    return gridrec.reconstruct(sino, theta, center, filter_name=filter_name, threads=threads, n_out=n_out,
                               filter_par=filter_par)


def import_tomopy() -> ModuleType:
    """TomoPy, with its compiled libraries (``libtomo-*.so``) loaded.

    TomoPy loads them with ``ctypes.util.find_library``, which searches the dynamic linker's paths only:
    conda's Python also searches its environment's ``lib/`` (so envs/tomopy.yaml needs nothing), a venv's
    does not. `.ci/tomopy.sh` installs them in the venv's ``lib/`` (``sys.prefix``); during the import,
    names found there resolve to their absolute path, the same order as conda's, and no LD_LIBRARY_PATH is
    needed. Raises ImportError (ModuleNotFoundError) or OSError when they cannot be loaded.
    """
    lib = Path(sys.prefix) / "lib"
    linker_only = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        here = lib / f"lib{name}.so"
        return str(here) if here.is_file() else linker_only(name)

    ctypes.util.find_library = find_library
    try:
        import tomopy
        import tomopy.util.extern  # noqa: F401  (the compiled part: loads every libtomo-*.so)
    finally:
        ctypes.util.find_library = linker_only
    return tomopy


# What each TomoPy algorithm takes of `tomosnake.config.ALGORITHM_PARAMS` (TomoPy 1.15's
# allowed_recon_kwargs); its fbp is an unfiltered backprojection in C (filter_name and filter_par unread).
TOMOPY_PARAMS = {"gridrec": ("filter_par",), "fbp": (), "art": ("num_iter",), "sirt": ("num_iter",),
                 "mlem": ("num_iter",), "bart": ("num_iter", "num_block"), "osem": ("num_iter", "num_block"),
                 "ospml_hybrid": ("num_iter", "reg_par", "num_block"),
                 "ospml_quad": ("num_iter", "reg_par", "num_block"), "pml_hybrid": ("num_iter", "reg_par"),
                 "pml_quad": ("num_iter", "reg_par"), "tv": ("num_iter", "reg_par"), "grad": ("num_iter", "reg_par"),
                 "tikh": ("num_iter", "reg_par")}
# How many reg_par values each reads (libtomo's recon/*.c; pml_* run ospml_*'s code with one block).
TOMOPY_SIZES = {a: {"reg_par": n} for a, n in (("ospml_hybrid", 2), ("pml_hybrid", 2), ("tikh", 2), ("ospml_quad", 1),
                                                ("pml_quad", 1), ("tv", 1), ("grad", 1))}


def _run_tomopy(sino, theta, center, n_out, algorithm, filter_name, threads, **params):
    tomopy = import_tomopy()
    kwargs = {"num_gridx": n_out, "num_gridy": n_out, **params}
    if algorithm in ("gridrec", "fbp"):
        kwargs["filter_name"] = filter_name
    rec = tomopy.recon(np.ascontiguousarray(sino, dtype=np.float32), theta, center=center,
                       algorithm=algorithm, sinogram_order=False, ncore=threads, **kwargs)
    return np.asarray(rec, dtype=np.float32)


def _run_algotom(sino, theta, center, n_out, algorithm, filter_name, threads):
    from algotom.rec import reconstruction as ar

    algorithm = "dfi" if algorithm == "gridrec" else algorithm
    window = None if filter_name in ("ramlak", "none") else filter_name
    out = []
    for i in range(sino.shape[1]):
        s = np.ascontiguousarray(sino[:, i, :])
        if algorithm == "dfi":
            rec = ar.dfi_reconstruction(s, center, angles=theta, filter_name=window, apply_log=False, ncore=threads)
        else:  # fbp on the CPU; one numba thread, as two race in its backprojection (gain ~1.05)
            rec = ar.fbp_reconstruction(s, center, angles=theta, filter_name=window, apply_log=False,
                                        gpu=False, ncore=1)
        out.append(rec)
    return _centre_crop(np.stack(out), n_out).astype(np.float32, copy=False)


def _run_tomocupy(sino, theta, center, n_out, algorithm, filter_name, threads):
    """TomocuPy through its command line (its supported interface) on a temporary DXchange file."""
    import h5py

    algorithm = "fourierrec" if algorithm == "gridrec" else algorithm
    n_proj, n_slices, width = sino.shape
    exe = shutil.which("tomocupy")
    if exe is None:
        raise BackendUnavailable("the tomocupy command is not on PATH; use envs/tomocupy.yaml")
    with tempfile.TemporaryDirectory(prefix="tomosnake-tomocupy-") as tmp:
        src = Path(tmp) / "block.h5"
        with h5py.File(src, "w") as f:
            f["exchange/data"] = sino.astype(np.float32, copy=False)
            f["exchange/data_white"] = np.ones((1, n_slices, width), dtype=np.float32)
            f["exchange/data_dark"] = np.zeros((1, n_slices, width), dtype=np.float32)
            f["exchange/theta"] = np.rad2deg(theta)
        out = Path(tmp) / "rec"
        subprocess.run([exe, "recon", "--file-name", str(src), "--out-path-name", str(out),
                        "--reconstruction-type", "full", "--reconstruction-algorithm", algorithm,
                        "--rotation-axis", str(center), "--fbp-filter", filter_name, "--minus-log", "False",
                        "--save-format", "h5", "--dtype", "float32", "--nsino-per-chunk", str(min(8, n_slices))],
                       check=True, capture_output=True, text=True)
        with h5py.File(out.with_suffix(".h5"), "r") as f:
            rec = f["exchange/data"][...]
    return _centre_crop(rec, n_out).astype(np.float32, copy=False)


BACKENDS: dict[str, Backend] = {
    "gridrec": Backend("gridrec", "finufft", "pip (tomosnake's own dependencies)", ("gridrec", "fbp"),
                       gridrec.FILTERS, _run_gridrec, params={"gridrec": ("filter_par",), "fbp": ("filter_par",)}),
    "tomopy": Backend("tomopy", "tomopy", "conda-forge, not PyPI: use envs/tomopy.yaml (or build it into a venv "
                      "with .ci/tomopy.sh)", tuple(TOMOPY_PARAMS), gridrec.FILTERS, _run_tomopy,
                      params=TOMOPY_PARAMS, sizes=TOMOPY_SIZES, load=import_tomopy),
    "tomocupy": Backend("tomocupy", "tomocupy", "conda-forge with a CUDA GPU: use envs/tomocupy.yaml",
                        ("gridrec", "fourierrec", "lprec", "linerec"), ("shepp", "parzen"), _run_tomocupy,
                        command="tomocupy"),
    "algotom": Backend("algotom", "algotom", "pip (tomosnake's own dependencies)", ("gridrec", "dfi", "fbp"),
                       ("none", "ramlak", "hann", "bartlett", "blackman", "hamming", "nuttall", "parzen",
                        "triang"), _run_algotom),
}


def check_backend(name: str, algorithm: str | None = None, filter_name: str | None = None,
                  params: Mapping[str, object] | None = None) -> None:
    """Fail at plan time if backend ``name`` does not exist, lacks ``algorithm``/``filter_name``, or
    cannot honour one of ``params`` (the algorithm's own parameters that are set, `ReconConfig.algorithm_params`).

    Whether it is installed is not checked: the plan runs on the submit host, which need not have a
    GPU backend; the jobs that reconstruct check that (`require_backend`).
    """
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    b = BACKENDS[name]
    if algorithm is not None and algorithm not in b.algorithms:
        raise BackendUnavailable(f"backend {name!r} has no algorithm {algorithm!r}; choose one of "
                                 f"{', '.join(b.algorithms)}")
    if filter_name is not None and filter_name not in b.filters:
        raise BackendUnavailable(f"backend {name!r} has no filter {filter_name!r}; choose one of "
                                 f"{', '.join(str(f) for f in b.filters)}")
    for key, value in (params or {}).items():
        takes = b.params.get(algorithm or "gridrec", ())
        if key not in takes:
            raise BackendUnavailable(f"recon.{key}: backend {name!r} with algorithm {algorithm!r} cannot use it "
                                     f"(it takes {', '.join(takes) or 'none of ' + ', '.join(ALGORITHM_PARAMS)})")
        size = b.sizes.get(algorithm or "gridrec", {}).get(key)
        if size is not None and len(value) != size:  # type: ignore[arg-type]
            raise BackendUnavailable(f"recon.{key}: {name}'s {algorithm} reads {size} value(s), not {value}")


def require_backend(name: str, algorithm: str | None = None, filter_name: str | None = None,
                    params: Mapping[str, object] | None = None, load: bool = True) -> None:
    """`check_backend`, then fail, naming the environment that provides it, unless it is installed here
    (and, with ``load``, its compiled part loads, where it has one)."""
    check_backend(name, algorithm, filter_name, params)
    b = BACKENDS[name]
    if importlib.util.find_spec(b.module) is None:
        raise BackendUnavailable(f"backend {name!r} needs the Python package {b.module!r}, which is not installed "
                                 f"in this job's environment ({sys.executable}); it comes from {b.provider}")
    if load and b.load is not None:
        try:
            b.load()
        except (ImportError, OSError) as err:
            reason = " ".join(str(err).split()).rstrip(".")
            raise BackendUnavailable(f"backend {name!r}: {b.module!r} is installed but its compiled part does not "
                                     f"load in this job's environment ({sys.executable}): {reason}; "
                                     f"it comes from {b.provider}") from None
    if b.command is not None and shutil.which(b.command) is None:
        raise BackendUnavailable(f"backend {name!r} needs the {b.command!r} command, which is not on this job's "
                                 f"PATH; it comes from {b.provider}")


def get_backend(name: str) -> Reconstructor:
    """The reconstruct function of an installed backend (see `require_backend`)."""
    require_backend(name)
    return BACKENDS[name].run


def tomocupy_lamino_command(file_name: str, out_dir: str, cfg_algorithm: str, filter_name: str, angle: float,
                            center: float, start: int, end: int, chunk: int) -> list[str]:
    """TomocuPy's command line for laminography slices [start, end) of a -log DXchange file (flags as in
    TomocuPy's config.py: ``recon_steps`` holds the lamino section; slice s sits at height s - rows / 2)."""
    algorithm = "fourierrec" if cfg_algorithm == "gridrec" else cfg_algorithm
    return ["tomocupy", "recon_steps", "--file-name", file_name, "--out-path-name", out_dir,
            "--reconstruction-type", "full", "--reconstruction-algorithm", algorithm,
            "--lamino-angle", repr(float(angle)), "--lamino-start-row", str(start), "--lamino-end-row", str(end),
            "--rotation-axis", repr(float(center)), "--fbp-filter", filter_name, "--pre-processing", "False",
            "--minus-log", "False", "--save-format", "tiff", "--dtype", "float32",
            "--nsino-per-chunk", str(chunk)]


def run_tomocupy_lamino(filtered_input: np.ndarray, row0: int, theta_deg: np.ndarray, angle: float, center: float,
                        v_center: float, z: np.ndarray, n_out: int, algorithm: str, filter_name: str) -> np.ndarray:
    """Laminography slices at heights ``z`` (consecutive) with TomocuPy, from -log rows [row0, row0 + rows).

    TomocuPy puts the origin on its file's row rows/2, so the rows are zero-padded (zero: no attenuation)
    to be symmetric about ``v_center`` (within half a row); its slices lie on its own integer grid, so
    they match ``z`` within half a slice.
    """
    import h5py
    import tifffile

    require_backend("tomocupy", algorithm, filter_name)
    n_proj, rows, width = filtered_input.shape
    top = int(np.ceil(v_center))
    half = max(top - row0, row0 + rows - top, 1)
    padded = np.zeros((n_proj, 2 * half, width), dtype=np.float32)
    a = top - half  # our row of the file's row 0
    padded[:, row0 - a:row0 - a + rows] = filtered_input
    cos_a = np.cos(np.deg2rad(angle))
    start = int(np.rint(z[0] - (top - v_center) / cos_a + half))
    with tempfile.TemporaryDirectory(prefix="tomosnake-tomocupy-") as tmp:
        src = Path(tmp) / "slab.h5"
        with h5py.File(src, "w") as f:
            f["exchange/data"] = padded
            f["exchange/data_white"] = np.ones((1, 2 * half, width), dtype=np.float32)
            f["exchange/data_dark"] = np.zeros((1, 2 * half, width), dtype=np.float32)
            f["exchange/theta"] = np.asarray(theta_deg, dtype=np.float64)
        out = Path(tmp) / "rec"
        cmd = tomocupy_lamino_command(str(src), str(out), algorithm, filter_name, angle, center, start,
                                      start + len(z), min(8, len(z)))
        cmd[0] = shutil.which("tomocupy") or cmd[0]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        rec = np.stack([tifffile.imread(out / f"recon_{s:05d}.tiff") for s in range(start, start + len(z))])
    return _centre_crop(rec, n_out).astype(np.float32, copy=False)
