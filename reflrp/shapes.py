"""Volumes of spheres and cubes drawn in code: the 3-D worked example's data, nothing to download.

:func:`make_shapes` places one sphere and one cube of random sizes at random, non-overlapping places in a cube
of ``size`` voxels, with a random brightness each over a noisy background, and labels every voxel: 0 background,
1 sphere, 2 cube.  Seeded: the same seed gives the same volumes on every machine.
"""

from __future__ import annotations

import numpy as np

from reflrp import validate

#: The classes of :func:`make_shapes`'s labels.
CLASSES = ("background", "sphere", "cube")


def _one(rng, size):
    """One volume and its labels."""
    grid = np.indices((size, size, size)).transpose(1, 2, 3, 0) + 0.5
    labels = np.zeros((size, size, size), np.int64)
    while True:  # a sphere and a cube that do not touch
        radius = rng.uniform(0.15, 0.25) * size
        half = rng.uniform(0.12, 0.2) * size
        centre = rng.uniform(radius + 1, size - radius - 1, 3)
        corner = rng.uniform(half + 1, size - half - 1, 3)
        if np.linalg.norm(centre - corner) > radius + half * np.sqrt(3) + 1:
            break
    labels[np.linalg.norm(grid - centre, axis=-1) <= radius] = 1
    labels[np.all(np.abs(grid - corner) <= half, axis=-1)] = 2
    brightness = np.array([0.0, *rng.uniform(0.5, 1.0, 2)])
    volume = brightness[labels] + rng.normal(0.0, 0.1, labels.shape)
    return np.clip(volume, 0.0, 1.0), labels


def make_shapes(n, size=24, seed=0):
    """``n`` volumes of one sphere and one cube each, and their voxel labels.

    Parameters
    ----------
    n : int
    size : int
        Edge length in voxels (at least 8).
    seed : int

    Returns
    -------
    volumes : ndarray of shape (n, 1, size, size, size), float64 in [0, 1]
    labels : ndarray of int64, shape (n, size, size, size): 0 background, 1 sphere, 2 cube (:data:`CLASSES`)
    """
    n = validate.integer(n, "make_shapes: n", minimum=1)
    size = validate.integer(size, "make_shapes: size", minimum=8, maximum=256)
    seed = validate.integer(seed, "make_shapes: seed", minimum=0)
    rng = np.random.default_rng(seed)
    volumes, labels = zip(*(_one(rng, size) for _ in range(n)))
    return np.stack(volumes)[:, None], np.stack(labels)


__all__ = ["CLASSES", "make_shapes"]
