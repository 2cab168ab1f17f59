"""Objects counted once across the slabs: labels that meet across a slab face joined (union-find).

Each slab numbers its objects 1..n in raster order; slab ``u``'s label ``l`` is node ``offset[u] + l - 1``.
Across the face between two slabs, connected components join every pair of labels that touch there (the
last slice of one slab and the first of the next, voxel by voxel: what labelling the whole volume joins).
Watershed regions cannot: two touching particles touch across the face too, where their watershed line
crosses it. Each slab's watershed ran over its halo, so each slab also labelled the slice just beyond
each of its faces (``ahead``, ``behind``), with the labels of its own regions: on those same voxels the
two slabs' labels of one particle overlap, and a pair joins when each is the other's largest overlap
(with a halo that holds the seeds and distances near the face, the two labellings are the same there and
the overlaps are one to one). The joined objects are numbered in raster order of their first voxel
(their smallest node), so the result is the same whatever the slabs. The components of the graph come
from `scipy.sparse.csgraph.connected_components`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Face:
    """A slab's labels on its first and last slices, and (watershed) on the slices just outside them."""

    first: np.ndarray
    last: np.ndarray
    behind: np.ndarray | None = None
    ahead: np.ndarray | None = None


@dataclass
class Objects:
    """The volume's objects: ``node_id`` maps every slab label (node) to its object (1..count, 0: dropped)."""

    node_id: np.ndarray  # int64 per node
    volumes: np.ndarray  # voxels of objects 1..count
    bbox: np.ndarray  # (count, 6): z0, y0, x0, z1, y1, x1 half-open


def face_pairs(below: np.ndarray, above: np.ndarray, mutual_best: bool) -> np.ndarray:
    """(k, 2) pairs of labels (``below``'s, ``above``'s) joined across a face: every pair that touches, or with
    ``mutual_best`` only pairs that are each other's largest contact (ties to the smaller label)."""
    both = (below > 0) & (above > 0)
    a, b = below[both].astype(np.int64), above[both].astype(np.int64)
    if a.size == 0:
        return np.zeros((0, 2), np.int64)
    key = a * (int(b.max()) + 1) + b
    uniq, n = np.unique(key, return_counts=True)
    pa, pb = uniq // (int(b.max()) + 1), uniq % (int(b.max()) + 1)
    if not mutual_best:
        return np.stack([pa, pb], axis=1)
    # largest contact first, then the smaller labels: the first pair of a label names its best partner
    best_of_a: dict[int, int] = {}
    for x, y in zip(*(v[np.lexsort((pb, pa, -n))].tolist() for v in (pa, pb)), strict=True):
        best_of_a.setdefault(x, y)
    best_of_b: dict[int, int] = {}
    for x, y in zip(*(v[np.lexsort((pa, pb, -n))].tolist() for v in (pa, pb)), strict=True):
        best_of_b.setdefault(y, x)
    keep = [(x, y) for x, y in best_of_a.items() if best_of_b.get(y) == x]
    return np.asarray(sorted(keep), np.int64).reshape(-1, 2)


def joined_pairs(lower: Face, upper: Face) -> np.ndarray:
    """(k, 2) labels of ``lower`` and ``upper`` (adjacent slabs) that are one object."""
    if lower.ahead is None or upper.behind is None:
        return face_pairs(lower.last, upper.first, mutual_best=False)
    pairs = np.concatenate([face_pairs(lower.ahead, upper.first, mutual_best=True),
                            face_pairs(lower.last, upper.behind, mutual_best=True)])
    return np.unique(pairs, axis=0)


def merge(counts: Sequence[np.ndarray], bboxes: Sequence[np.ndarray], pairs: Sequence[np.ndarray],
          min_voxels: int = 1) -> Objects:
    """Join the slabs' labels into objects.

    ``counts[u]``: voxels of labels 0..n_u of slab u; ``bboxes[u]``: (n_u, 6) boxes in volume coordinates;
    ``pairs[u]``: `joined_pairs` of slabs u and u + 1. Objects under ``min_voxels`` are dropped.
    """
    first_node = offsets(counts)
    total = int(first_node[-1])
    edges = [np.zeros((0, 2), np.int64)]
    for u, p in enumerate(pairs):
        edges.append(np.stack([p[:, 0] - 1 + first_node[u], p[:, 1] - 1 + first_node[u + 1]], axis=1))
    e = np.concatenate(edges)
    graph = coo_matrix((np.ones(len(e), np.int8), (e[:, 0], e[:, 1])), shape=(total, total))
    n_comp, comp = connected_components(graph, directed=False)
    first = np.full(n_comp, total, np.int64)
    np.minimum.at(first, comp, np.arange(total))
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(first)] = np.arange(n_comp)  # objects in raster order of their first voxel
    comp = rank[comp]
    node_counts = np.concatenate([c[1:] for c in counts]) if total else np.zeros(0, np.int64)
    volumes = np.bincount(comp, weights=node_counts, minlength=n_comp).astype(np.int64)
    boxes = np.concatenate(bboxes) if total else np.zeros((0, 6), np.int64)
    lo = np.full((n_comp, 3), np.iinfo(np.int64).max, np.int64)
    hi = np.zeros((n_comp, 3), np.int64)
    for k in range(3):
        np.minimum.at(lo[:, k], comp, boxes[:, k])
        np.maximum.at(hi[:, k], comp, boxes[:, 3 + k])
    kept = volumes >= min_voxels
    new_id = np.zeros(n_comp, np.int64)
    new_id[kept] = np.arange(1, int(kept.sum()) + 1)
    return Objects(node_id=new_id[comp], volumes=volumes[kept], bbox=np.concatenate([lo, hi], axis=1)[kept])


def offsets(counts: Sequence[np.ndarray]) -> np.ndarray:
    """First node of each slab."""
    return np.concatenate([[0], np.cumsum([len(c) - 1 for c in counts])]).astype(np.int64)


def equivalent_diameter(volumes: np.ndarray) -> np.ndarray:
    """Diameter of the sphere of the same volume."""
    return np.cbrt(6.0 * np.asarray(volumes, np.float64) / np.pi)


def touches_edge(bbox: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Whether each box reaches a face of the volume."""
    return (bbox[:, :3] == 0).any(axis=1) | (bbox[:, 3:] == np.asarray(shape)).any(axis=1)
