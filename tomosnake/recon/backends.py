"""Reconstruction backends behind one small interface.

A backend is a function ``(sino, theta_rad, center, n_out, algorithm, filter_name, threads)
-> (n_slices, n_out, n_out) float32`` where ``sino`` is (n_proj, n_slices, width) float32
(already -log, stitched and padded), ``center`` the rotation axis in its columns, and the
output grid is centred on the axis in the geometry of `tomosnake.phantom`
(s = x cos(theta) + y sin(theta), x along columns, y along rows, both increasing with the
index).  TomoPy, algotom and TomocuPy use y increasing upwards (TomoPy's gridrec writes
row ``ngridx - 1 - k``; for algotom this was measured on the phantom), so their slices are
mirrored top-to-bottom here to give the same image as the default backend.
Algorithm "gridrec" means each backend's Fourier method (TomocuPy fourierrec, algotom dfi);
the default backend's "fbp" is the same filtered backprojection as its "gridrec".
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomosnake.recon import gridrec

Reconstructor = Callable[[np.ndarray, np.ndarray, float, int, str, str, int], np.ndarray]


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


def _centre_crop(rec: np.ndarray, n_out: int) -> np.ndarray:
    """The central n_out x n_out of slices whose grid centre is the rotation axis."""
    n = rec.shape[-1]
    a = (n - n_out) // 2
    return rec[:, a:a + n_out, a:a + n_out]


def _run_gridrec(sino, theta, center, n_out, algorithm, filter_name, threads):
    return gridrec.reconstruct(sino, theta, center, filter_name=filter_name, threads=threads, n_out=n_out)


def _run_tomopy(sino, theta, center, n_out, algorithm, filter_name, threads):
    import tomopy

    kwargs = {"num_gridx": n_out, "num_gridy": n_out}
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
                       gridrec.FILTERS, _run_gridrec),
    "tomopy": Backend("tomopy", "tomopy", "conda-forge, not PyPI: use envs/tomopy.yaml",
                      ("gridrec", "fbp", "art", "bart", "mlem", "osem", "ospml_hybrid", "ospml_quad",
                       "pml_hybrid", "pml_quad", "sirt", "tv", "grad", "tikh"), gridrec.FILTERS, _run_tomopy),
    "tomocupy": Backend("tomocupy", "tomocupy", "conda-forge with a CUDA GPU: use envs/tomocupy.yaml",
                        ("gridrec", "fourierrec", "lprec", "linerec"), ("shepp", "parzen"), _run_tomocupy,
                        command="tomocupy"),
    "algotom": Backend("algotom", "algotom", "pip (tomosnake's own dependencies)", ("gridrec", "dfi", "fbp"),
                       ("none", "ramlak", "hann", "bartlett", "blackman", "hamming", "nuttall", "parzen",
                        "triang"), _run_algotom),
}


def require_backend(name: str, algorithm: str | None = None, filter_name: str | None = None) -> None:
    """Fail at plan time, naming the environment, if backend ``name`` cannot run here.

    With ``algorithm``/``filter_name`` also check that the backend offers them.
    """
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    b = BACKENDS[name]
    if importlib.util.find_spec(b.module) is None:
        raise BackendUnavailable(f"backend {name!r} needs the Python package {b.module!r}, which is not installed "
                                 f"in this environment; it comes from {b.provider}")
    if b.command is not None and shutil.which(b.command) is None:
        raise BackendUnavailable(f"backend {name!r} needs the {b.command!r} command, which is not on PATH; "
                                 f"it comes from {b.provider}")
    if algorithm is not None and algorithm not in b.algorithms:
        raise BackendUnavailable(f"backend {name!r} has no algorithm {algorithm!r}; choose one of "
                                 f"{', '.join(b.algorithms)}")
    if filter_name is not None and filter_name not in b.filters:
        raise BackendUnavailable(f"backend {name!r} has no filter {filter_name!r}; choose one of "
                                 f"{', '.join(str(f) for f in b.filters)}")


def get_backend(name: str) -> Reconstructor:
    """The reconstruct function of an installed backend (see `require_backend`)."""
    require_backend(name)
    return BACKENDS[name].run
