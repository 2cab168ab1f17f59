"""Synthetic DXchange scans of a 3D ellipsoid phantom with known ground truth.

Projections are the exact line integrals of the ellipsoids (analytic, no
discretisation), so a reconstruction can be compared with `ground_truth`.

Geometry (the convention every backend must match): the volume is
``(z, y, x)``; detector column ``u`` sees ``s = u - center`` and slice ``z`` is
detector row ``z``; at angle ``theta`` the ray sum is taken along the line
``x*cos(theta) + y*sin(theta) = s`` with ``x = col - (n-1)/2`` and
``y = (n-1)/2 - row`` of the reconstructed slice (rows run downwards, y upwards:
TomoPy's and algotom's orientation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path

# Modified Shepp-Logan as ellipsoids: (density, a, b, c, x0, y0, z0, phi_deg), in units of the half width.
SHEPP_LOGAN_3D: tuple[tuple[float, ...], ...] = (
    (1.0, 0.69, 0.92, 0.90, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.88, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, -0.25, -18.0),
    (-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, -0.25, 18.0),
    (0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, 0.1, -0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, -0.1, -0.25, 0.0),
    (0.1, 0.046, 0.023, 0.05, -0.08, -0.605, -0.25, 0.0),
    (0.1, 0.023, 0.023, 0.02, 0.0, -0.606, -0.25, 0.0),
    (0.1, 0.023, 0.046, 0.02, 0.06, -0.605, -0.25, 0.0),
)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that defines a synthetic scan; stored in the file as attributes."""

    n_proj: int = 180
    n_rows: int = 16
    n_cols: int = 128
    n_flat: int = 10
    n_dark: int = 10
    theta_end: float = 180.0  # degrees; 360 for a full turn
    center_offset: float = 0.0  # rotation axis minus the detector middle, in pixels
    max_attenuation: float = 1.5  # largest line integral through the phantom
    flat_counts: float = 20000.0
    dark_counts: float = 100.0
    noise: bool = True
    i0_drift: float = 0.0  # relative amplitude of a top-up saw-tooth in beam intensity
    dtype: str = "uint16"
    seed: int = 0
    ellipsoids: tuple[tuple[float, ...], ...] = field(default=SHEPP_LOGAN_3D)

    @property
    def center(self) -> float:
        """Rotation axis in detector pixels."""
        return (self.n_cols - 1) / 2 + self.center_offset

    @property
    def mu_scale(self) -> float:
        """Attenuation per pixel of density 1, so the largest ray sum is ``max_attenuation``."""
        # The longest ray sum of the modified Shepp-Logan is about 0.44 half-widths (skull minus brain).
        return self.max_attenuation / (0.44 * self.n_cols / 2)

    def theta(self) -> np.ndarray:
        """Angles in degrees, evenly spaced, end excluded."""
        return np.linspace(0.0, self.theta_end, self.n_proj, endpoint=False)


def _scaled(spec: PhantomSpec) -> list[tuple[float, ...]]:
    """Ellipsoids in pixel units: (mu, a, b, c, x0, y0, z0, phi_rad)."""
    half_xy = spec.n_cols / 2
    half_z = spec.n_rows / 2
    out: list[tuple[float, ...]] = []
    for rho, a, b, c, x0, y0, z0, phi in spec.ellipsoids:
        out.append((rho * spec.mu_scale, a * half_xy, b * half_xy, c * half_z,
                    x0 * half_xy, y0 * half_xy, z0 * half_z, np.deg2rad(phi)))
    return out


def _z(spec: PhantomSpec, rows: np.ndarray) -> np.ndarray:
    return rows - (spec.n_rows - 1) / 2


def sinogram_block(spec: PhantomSpec, theta_deg: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact ray sums, shape (len(theta), len(rows), n_cols), float64."""
    th = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))[:, None, None]
    z = _z(spec, np.asarray(rows, dtype=np.float64))[None, :, None]
    s = (np.arange(spec.n_cols) - spec.center)[None, None, :]
    out = np.zeros((th.shape[0], z.shape[1], spec.n_cols))
    for mu, a, b, c, x0, y0, z0, phi in _scaled(spec):
        t2 = 1.0 - ((z - z0) / c) ** 2
        scale = np.sqrt(np.clip(t2, 0.0, None))  # slice of the ellipsoid at height z
        az, bz = a * scale, b * scale
        tp = th - phi
        r2 = (az * np.cos(tp)) ** 2 + (bz * np.sin(tp)) ** 2
        sp = s - (x0 * np.cos(th) + y0 * np.sin(th))
        inside = (sp**2 < r2) & (r2 > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(inside, 2 * mu * az * bz * np.sqrt(np.abs(r2 - sp**2)) / np.where(r2 > 0, r2, 1), 0.0)
        out += val
    return out


def ground_truth(spec: PhantomSpec, rows: np.ndarray | None = None) -> np.ndarray:
    """Attenuation per pixel of slices ``rows`` (all by default), shape (rows, n_cols, n_cols)."""
    rows = np.arange(spec.n_rows) if rows is None else np.asarray(rows)
    n = spec.n_cols
    # The reconstruction grid is centred on the rotation axis.
    row, col = np.mgrid[0:n, 0:n].astype(np.float64)
    x, y = col - (n - 1) / 2, (n - 1) / 2 - row
    vol = np.zeros((len(rows), n, n), dtype=np.float64)
    for i, zz in enumerate(_z(spec, rows)):
        for mu, a, b, c, x0, y0, z0, phi in _scaled(spec):
            t2 = 1.0 - ((zz - z0) / c) ** 2
            if t2 <= 0:
                continue
            sc = np.sqrt(t2)
            xr = (x - x0) * np.cos(phi) + (y - y0) * np.sin(phi)
            yr = -(x - x0) * np.sin(phi) + (y - y0) * np.cos(phi)
            vol[i] += mu * (((xr / (a * sc)) ** 2 + (yr / (b * sc)) ** 2) <= 1.0)
    return vol.astype(np.float32)


def _beam(spec: PhantomSpec) -> np.ndarray:
    """Smooth, non-uniform flat field (rows, cols)."""
    r = np.linspace(-1, 1, spec.n_rows)[:, None]
    c = np.linspace(-1, 1, spec.n_cols)[None, :]
    return spec.flat_counts * (1.0 - 0.25 * c**2 - 0.1 * r**2 + 0.05 * np.sin(7 * c))


def i0_trace(spec: PhantomSpec) -> np.ndarray:
    """Relative beam intensity per projection (1 at the first); a top-up saw-tooth."""
    k = np.arange(spec.n_proj)
    return 1.0 - spec.i0_drift * ((k % 50) / 50.0)


def _to_dtype(arr: np.ndarray, dtype: str) -> np.ndarray:
    if np.dtype(dtype).kind == "u":
        return np.clip(np.rint(arr), 0, np.iinfo(dtype).max).astype(dtype)
    return arr.astype(dtype)


def write_scan(path: str | Path, spec: PhantomSpec = PhantomSpec(), block: int = 32) -> Path:
    """Write a DXchange file of the phantom; projections are generated ``block`` at a time."""
    path = Path(path)
    rng = np.random.default_rng(spec.seed)
    beam = _beam(spec)
    theta = spec.theta()
    i0 = i0_trace(spec)
    shape = (spec.n_proj, spec.n_rows, spec.n_cols)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_dataset("exchange/data", shape=shape, dtype=spec.dtype,
                                chunks=(1, spec.n_rows, spec.n_cols))
        for p0 in range(0, spec.n_proj, block):
            p1 = min(p0 + block, spec.n_proj)
            att = sinogram_block(spec, theta[p0:p1], np.arange(spec.n_rows))
            counts = beam[None] * i0[p0:p1, None, None] * np.exp(-att)
            if spec.noise:
                counts = rng.poisson(counts).astype(np.float64)
            data[p0:p1] = _to_dtype(counts + spec.dark_counts, spec.dtype)
        flats = beam[None] * np.ones((spec.n_flat, 1, 1))
        darks = np.full((spec.n_dark, spec.n_rows, spec.n_cols), spec.dark_counts)
        if spec.noise:
            flats = rng.poisson(flats).astype(np.float64)
            darks = rng.poisson(darks).astype(np.float64)
        f["exchange/data_white"] = _to_dtype(flats + spec.dark_counts, spec.dtype)
        f["exchange/data_dark"] = _to_dtype(darks, spec.dtype)
        f["exchange/theta"] = theta
        f["exchange/theta"].attrs["units"] = "degrees"
        f["instrument/beam_monitor/data"] = i0 * 1000.0
        f["measurement/sample/name"] = "shepp-logan phantom"
        f["measurement/instrument/detector/pixel_size"] = 1.0
        group = f.require_group("phantom")
        for key, val in asdict(spec).items():
            group.attrs[key] = val if isinstance(val, str) else np.asarray(val)
    return path


def write_sparse_scan(path: str | Path, shape: tuple[int, int, int], n_frames: int = 2) -> Path:
    """A DXchange file declaring ``shape`` with frame chunks (as beamlines write) and nothing written but the
    angles: a few KB for a scan of any size (the audits and plans of facility scans). Unwritten chunks read as
    the fill value: projections 5000, flats 20000, darks 100 counts."""
    n_proj, n_rows, n_cols = shape
    with h5py.File(path, "w") as f:
        for name, n, fill in (("data", n_proj, 5000), ("data_white", n_frames, 20000), ("data_dark", n_frames, 100)):
            f.create_dataset(f"exchange/{name}", shape=(n, n_rows, n_cols), dtype=np.uint16,
                             chunks=(1, n_rows, n_cols), fillvalue=fill)
        f["exchange/theta"] = np.linspace(0, 180, n_proj, endpoint=False)
        f["exchange/theta"].attrs["units"] = "degrees"
    return Path(path)


def read_spec(path: str | Path) -> PhantomSpec:
    """The spec a phantom file was written with."""
    with h5py.File(path, "r") as f:
        attrs = dict(f["phantom"].attrs)
    ellipsoids = tuple(tuple(float(x) for x in row) for row in attrs.pop("ellipsoids"))
    plain = {k: v.item() if hasattr(v, "item") else v for k, v in attrs.items()}
    return PhantomSpec(ellipsoids=ellipsoids, **plain)
