"""Synthetic laminography scans: a flat sample of ellipsoids seen along tilted rays, exactly.

Each detector pixel's value is the exact line integral of the ellipsoids along its ray: the ray
x = p + t d (p on the detector plane through the origin, d the unit ray direction of
`tomosnake.recon.lamino`'s geometry) meets the ellipsoid (x - c)^T A (x - c) <= 1 where
t^2 d.A.d + 2 t q.A.d + q.A.q - 1 <= 0 (q = p - c), a chord of length 2 sqrt(disc) / d.A.d.
Flats, darks and Poisson noise as in `tomosnake.phantom`; `ground_truth` samples the
ellipsoids at the voxel centres of the reconstruction grid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tomosnake.io.atomic import atomic_path

# A flat disc with inclusions: (attenuation per px, semi-axes a, b, c (px), centre x0, y0, z0 (px), rotation
# about z (degrees)). Contrasts differ in sign and size, so a wrong tilt or a mirrored geometry shows.
FLAT_SAMPLE: tuple[tuple[float, ...], ...] = (
    (0.02, 26.0, 24.0, 5.0, 0.0, 0.0, 0.0, 0.0),
    (0.03, 7.0, 4.0, 3.0, -10.0, 6.0, 0.0, 30.0),
    (-0.015, 5.0, 5.0, 3.0, 9.0, -8.0, 1.0, 0.0),
    (0.04, 3.0, 6.0, 2.5, 12.0, 10.0, -1.0, -20.0),
)


@dataclass(frozen=True)
class LaminoSpec:
    """A laminography scan of ellipsoids; stored in the file as attributes."""

    angle: float = 20.0  # laminography angle, degrees (TomocuPy's convention)
    n_proj: int = 180  # evenly over a full turn
    n_rows: int = 40
    n_cols: int = 64
    center_offset: float = 0.0  # rotation axis minus the detector middle, px
    n_flat: int = 10
    n_dark: int = 10
    flat_counts: float = 20000.0
    dark_counts: float = 100.0
    noise: bool = True
    seed: int = 0
    ellipsoids: tuple[tuple[float, ...], ...] = field(default=FLAT_SAMPLE)

    @property
    def center(self) -> float:
        return (self.n_cols - 1) / 2 + self.center_offset

    def theta(self) -> np.ndarray:
        return np.linspace(0.0, 360.0, self.n_proj, endpoint=False)


def _quadric(a: float, b: float, c: float, phi_deg: float) -> np.ndarray:
    """A of (x - c)^T A (x - c) <= 1 for semi-axes a, b, c rotated by phi about z."""
    p = math.radians(phi_deg)
    rot = np.array([[math.cos(p), -math.sin(p), 0.0], [math.sin(p), math.cos(p), 0.0], [0.0, 0.0, 1.0]])
    return rot @ np.diag([a**-2, b**-2, c**-2]) @ rot.T


def ray_sums(spec: LaminoSpec, theta_deg: np.ndarray) -> np.ndarray:
    """Exact line integrals, (len(theta), n_rows, n_cols) float64."""
    alpha = math.radians(spec.angle)
    sa, ca = math.sin(alpha), math.cos(alpha)
    u = np.arange(spec.n_cols) - spec.center
    v = np.arange(spec.n_rows) - (spec.n_rows - 1) / 2
    out = np.zeros((len(theta_deg), spec.n_rows, spec.n_cols))
    for k, th in enumerate(np.deg2rad(np.asarray(theta_deg, dtype=np.float64))):
        e_u = np.array([math.cos(th), math.sin(th), 0.0])
        e_v = np.array([-sa * math.sin(th), sa * math.cos(th), ca])
        d = np.cross(e_u, e_v)  # unit: e_u and e_v are orthonormal
        p = u[None, :, None] * e_u + v[:, None, None] * e_v  # (rows, cols, 3)
        for mu, a, b, c, x0, y0, z0, phi in spec.ellipsoids:
            A = _quadric(a, b, c, phi)
            q = p - np.array([x0, y0, z0])
            dad = d @ A @ d
            qad = q @ (A @ d)
            qaq = np.einsum("rci,ij,rcj->rc", q, A, q)
            disc = qad**2 - dad * (qaq - 1.0)
            out[k] += mu * 2.0 * np.sqrt(np.clip(disc, 0.0, None)) / dad
    return out


def ground_truth(spec: LaminoSpec, height: int) -> np.ndarray:
    """Attenuation per px at the voxel centres of ``height`` slices centred on the detector's middle row,
    (height, n_cols, n_cols) float32 in the reconstruction's orientation."""
    n = spec.n_cols
    h = (n - 1) / 2
    z, row, col = np.mgrid[0:height, 0:n, 0:n].astype(np.float64)
    pts = np.stack([col - h, h - row, z - (height - 1) / 2], axis=-1)
    vol = np.zeros((height, n, n))
    for mu, a, b, c, x0, y0, z0, phi in spec.ellipsoids:
        q = pts - np.array([x0, y0, z0])
        vol += mu * (np.einsum("...i,ij,...j->...", q, _quadric(a, b, c, phi), q) <= 1.0)
    return vol.astype(np.float32)


def _beam(spec: LaminoSpec) -> np.ndarray:
    r = np.linspace(-1, 1, spec.n_rows)[:, None]
    c = np.linspace(-1, 1, spec.n_cols)[None, :]
    return spec.flat_counts * (1.0 - 0.2 * c**2 - 0.1 * r**2)


def write_scan(path: str | Path, spec: LaminoSpec = LaminoSpec()) -> Path:
    """Write a DXchange file (uint16 counts, flats, darks, angles in degrees) of the phantom."""
    path = Path(path)
    rng = np.random.default_rng(spec.seed)
    beam = _beam(spec)
    theta = spec.theta()
    counts = beam[None] * np.exp(-ray_sums(spec, theta))
    flats = np.repeat(beam[None], spec.n_flat, axis=0)
    darks = np.full((spec.n_dark, spec.n_rows, spec.n_cols), spec.dark_counts)
    if spec.noise:
        counts, flats, darks = (rng.poisson(x).astype(np.float64) for x in (counts, flats, darks))

    def u16(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, 65535).astype(np.uint16)

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("exchange/data", data=u16(counts + spec.dark_counts), chunks=(1, spec.n_rows, spec.n_cols))
        f["exchange/data_white"] = u16(flats + spec.dark_counts)
        f["exchange/data_dark"] = u16(darks)
        f["exchange/theta"] = theta
        f["exchange/theta"].attrs["units"] = "degrees"
        f["measurement/sample/name"] = "laminography phantom"
        f["measurement/instrument/detector/pixel_size"] = 1.0
        group = f.require_group("phantom")
        for key, val in asdict(spec).items():
            group.attrs[key] = np.asarray(val)
    return path
