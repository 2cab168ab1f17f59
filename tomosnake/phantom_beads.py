"""Bead-pack phantoms: random spheres of known radii in a cube, as `tomosnake.phantom` ellipsoids.

Every centre lies inside the volume (every bead shows) and inside the reconstruction circle, with the
whole bead within it in (y, x); beads near the first and last slices are cut by the volume's edge.
``touching``: beads come in clusters, each new bead touching one already placed (centres ``r1 + r2 - overlap``
apart), as in a packed bed; otherwise beads keep ``gap`` voxels between their surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomosnake.phantom import PhantomSpec, ground_truth


@dataclass(frozen=True)
class Bead:
    z: float  # centre, voxels from the volume's centre (z, y up, x: `tomosnake.phantom`'s axes)
    y: float
    x: float
    r: float


def bead_pack(n: int, radii: tuple[float, float], count: int, seed: int = 0, touching: bool = False,
              gap: float = 3.0, overlap: float = 1.0, tries: int = 20000) -> list[Bead]:
    """``count`` beads of radii uniform in ``radii`` in an ``n``-voxel cube (fewer if they do not fit)."""
    rng = np.random.default_rng(seed)
    half = (n - 1) / 2
    fov = n / 2 - 2.0  # the reconstruction circle, less a margin
    beads: list[Bead] = []

    def fits(b: Bead) -> bool:
        if np.hypot(b.x, b.y) + b.r > fov or abs(b.z) > half:
            return False
        for o in beads:
            d = np.sqrt((b.x - o.x) ** 2 + (b.y - o.y) ** 2 + (b.z - o.z) ** 2)
            if d < b.r + o.r + (-overlap if touching else gap) - 1e-6:
                return False
        return True

    for _ in range(tries):
        if len(beads) == count:
            break
        r = float(rng.uniform(*radii))
        if touching and beads and rng.random() < 0.8:  # next to a bead already placed
            o = beads[int(rng.integers(len(beads)))]
            v = rng.normal(size=3)
            v *= (r + o.r - overlap) / np.linalg.norm(v)
            b = Bead(o.z + v[0], o.y + v[1], o.x + v[2], r)
        else:
            z, y, x = (float(c) for c in rng.uniform(-half, half, 3))
            b = Bead(z, y, x, r)
        if fits(b):
            beads.append(b)
    return beads


def spec(n: int, beads: list[Bead], n_proj: int | None = None, seed: int = 0, noise: bool = True,
         max_attenuation: float = 1.5) -> PhantomSpec:
    """A scan of the beads (density 1 each) on an ``n``-row, ``n``-column detector."""
    half = n / 2
    ellipsoids = tuple((1.0, b.r / half, b.r / half, b.r / half, b.x / half, b.y / half, b.z / half, 0.0)
                       for b in beads)
    return PhantomSpec(n_proj=n_proj or int(np.ceil(np.pi / 2 * n)), n_rows=n, n_cols=n, seed=seed, noise=noise,
                       max_attenuation=max_attenuation, ellipsoids=ellipsoids)


def truth(s: PhantomSpec) -> np.ndarray:
    """The voxelised beads (bool), as the reconstruction's grid holds them."""
    return ground_truth(s) > 0
