"""Handwritten-looking digits drawn in code: no dataset to download.

Each digit is a skeleton of strokes in the unit square; :func:`make_digits` applies a random affine map
(rotation, scale, shear, shift), a random pen width and a little background noise, and renders the strokes
anti-aliased into 28x28 images in [0, 1].  The segmentation label of the demo U-Net is the stroke mask
``image > 0.5`` on the center 12x12 (:func:`stroke_labels`).  Everything is seeded, so the same seed gives the
same digits on every machine.
"""

from __future__ import annotations

import numpy as np

from reflrp import validate

SIZE = 28


def _ellipse(cx, cy, rx, ry, start=0.0, stop=2 * np.pi, n=20):
    t = np.linspace(start, stop, n)
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


GLYPHS = {
    0: [_ellipse(0.5, 0.5, 0.28, 0.4)],
    1: [[(0.35, 0.25), (0.55, 0.08), (0.55, 0.92)]],
    2: [_ellipse(0.5, 0.32, 0.27, 0.22, np.pi, 2.15 * np.pi, 12) + [(0.2, 0.92), (0.82, 0.92)]],
    3: [[(0.2, 0.12), (0.75, 0.12), (0.45, 0.45), (0.72, 0.58), (0.74, 0.8), (0.5, 0.93), (0.2, 0.85)]],
    4: [[(0.65, 0.92), (0.65, 0.08), (0.18, 0.65), (0.85, 0.65)]],
    5: [[(0.78, 0.1), (0.3, 0.1), (0.26, 0.45), (0.6, 0.42), (0.78, 0.62), (0.7, 0.86), (0.45, 0.93), (0.2, 0.84)]],
    6: [[(0.7, 0.08), (0.42, 0.3), (0.26, 0.66)], _ellipse(0.5, 0.7, 0.25, 0.22)],
    7: [[(0.2, 0.1), (0.8, 0.1), (0.42, 0.92)], [(0.35, 0.5), (0.7, 0.5)]],
    8: [_ellipse(0.5, 0.29, 0.2, 0.19), _ellipse(0.5, 0.71, 0.25, 0.21)],
    9: [_ellipse(0.5, 0.32, 0.24, 0.22), [(0.74, 0.32), (0.66, 0.92)]],
}


def _segments(glyph):
    return np.array([(p, q) for stroke in glyph for p, q in zip(stroke[:-1], stroke[1:])], dtype=np.float64)


def _render(segments, width):
    """Anti-aliased strokes: intensity falls from 1 to 0 over one pixel at distance ``width / 2``."""
    centers = (np.arange(SIZE) + 0.5)[:, None]
    py, px = np.broadcast_arrays(centers, centers.T)
    p = np.stack([px.ravel(), py.ravel()], axis=1)[:, None, :]  # (pixels, 1, 2) as (x, y)
    a, b = segments[None, :, 0, :], segments[None, :, 1, :]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    distance = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1).min(axis=1)
    return np.clip(width / 2 - distance + 0.5, 0.0, 1.0).reshape(SIZE, SIZE)


def make_digits(n, seed=0):
    """``n`` random digit images and their classes.

    Returns
    -------
    images : ndarray of shape (n, 1, 28, 28), float64 in [0, 1]
    classes : ndarray of int64, shape (n,)
    """
    n = validate.integer(n, "make_digits: n", minimum=0, maximum=None)
    seed = validate.integer(seed, "make_digits: seed", minimum=0, maximum=None)
    rng = np.random.default_rng(seed)
    images = np.empty((n, 1, SIZE, SIZE))
    classes = rng.integers(0, 10, size=n)
    for k, digit in enumerate(classes):
        segments = _segments(GLYPHS[int(digit)]) - 0.5  # centered unit square
        angle = rng.uniform(-0.3, 0.3)
        scale = rng.uniform(14.0, 20.0)
        shear = rng.uniform(-0.3, 0.3)
        rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        transform = scale * rotate @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([rng.uniform(0.7, 1.0), 1.0])
        shift = SIZE / 2 + rng.uniform(-2.0, 2.0, size=2)
        placed = segments @ transform.T + shift
        image = _render(placed, rng.uniform(1.6, 3.2))
        image = image * rng.uniform(0.8, 1.0) + rng.uniform(0.0, 0.12, size=image.shape)
        images[k, 0] = np.clip(image, 0.0, 1.0)
    return images, classes


def stroke_labels(images):
    """The demo's segmentation target: ``image > 0.5`` on the center 12x12, shape (n, 1, 12, 12)."""
    return (images[:, :, 8:20, 8:20] > 0.5).astype(images.dtype)


__all__ = ["GLYPHS", "make_digits", "stroke_labels"]
