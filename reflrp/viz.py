"""Heatmaps of relevance.

Colours are computed with numpy alone (:func:`colorize`, :func:`overlay`): a diverging map centred at zero
(blue negative, white zero, red positive) with symmetric clipping at a quantile of ``|R|``.  Figures with
titles and grids (:func:`save_heatmaps`) need matplotlib, the optional extra ``viz``
(``pip install "reflrp[viz]"``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.files import written

_NEGATIVE = np.array([0.02, 0.19, 0.58])  # deep blue
_POSITIVE = np.array([0.70, 0.02, 0.15])  # deep red


def symmetric_limit(relevance, quantile=0.995):
    """``q``-quantile of ``|relevance|``: the value mapped to full colour (larger values are clipped)."""
    if not 0 < quantile <= 1:
        raise ReflrpError(f"quantile must be in (0, 1], got {quantile!r}")
    limit = float(np.quantile(np.abs(relevance), quantile))
    return limit if limit > 0 else 1.0


def colorize(relevance, quantile=0.995, limit=None):
    """A (H, W) relevance map as (H, W, 3) RGB in [0, 1]: white at 0, red positive, blue negative.

    Parameters
    ----------
    relevance : ndarray of shape (H, W)
    quantile : float
        Symmetric clipping: ``|R|`` above this quantile gets full colour.
    limit : float, optional
        Use this clipping value instead (to share one scale across maps).
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 2:
        raise ReflrpError(f"colorize: relevance must be a 2-D map, got shape {relevance.shape}")
    limit = symmetric_limit(relevance, quantile) if limit is None else float(limit)
    t = np.clip(relevance / limit, -1.0, 1.0)[..., None]
    white = np.ones(3)
    return np.where(t >= 0, white + t * (_POSITIVE - white), white - t * (_NEGATIVE - white))


def overlay(image, relevance, quantile=0.995, limit=None):
    """Relevance colours over a greyscale version of ``image`` ((H, W) or (C, H, W) in [0, 1]).

    Each pixel shows the image where relevance is near 0 and the relevance colour where ``|R|`` reaches the
    clipping value, blended in proportion to ``|R| / limit``.
    """
    image = np.asarray(image, dtype=np.float64)
    grey = image.mean(axis=0) if image.ndim == 3 else image
    relevance = np.asarray(relevance, dtype=np.float64)
    if grey.shape != relevance.shape:
        raise ReflrpError(f"overlay: image {grey.shape} and relevance {relevance.shape} differ in size")
    limit = symmetric_limit(relevance, quantile) if limit is None else float(limit)
    weight = np.clip(np.abs(relevance) / limit, 0.0, 1.0)[..., None]
    base = np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2) * 0.75
    return (1 - weight) * base + weight * colorize(relevance, limit=limit)


def require_matplotlib():
    """matplotlib's ``Figure`` class, or a one-line :class:`ReflrpError` saying how to install it."""
    try:
        import matplotlib  # noqa: F401  (the package itself, even when matplotlib.figure was imported before)
        from matplotlib.figure import Figure
    except ImportError:
        raise ReflrpError('heatmap PNGs need matplotlib: pip install "reflrp[viz]"') from None
    return Figure


class Panel(NamedTuple):
    """One panel of a figure: a greyscale image (``relevance`` None) or a relevance map (drawn over ``image`` in
    :func:`save_panels` with ``on_image``)."""

    title: str
    relevance: np.ndarray | None = None
    image: np.ndarray | None = None


def save_heatmaps(path, maps, image=None, marker=None, quantile=0.995, columns=4, title=None, on_image=False,
                  image_title="input"):
    """Write a grid of relevance heatmaps (and optionally the input with a marked pixel) to a PNG.

    Parameters
    ----------
    path : str
    maps : dict of str to ndarray of shape (H, W)
        Title -> relevance map; each map is clipped at its own quantile.
    image : ndarray of shape (H, W), optional
        Shown first, in grey, titled ``image_title``.
    marker : (row, col), optional
        Input-space pixel to mark on every panel.
    columns : int
        At most this many panels per row (never more columns than panels).
    on_image : bool
        Draw each map over the image (:func:`overlay`) instead of on white.
    image_title : str
        The title of the image's panel.
    """
    panels = ([Panel(image_title, None, image)] if image is not None else []) + \
        [Panel(name, relevance, image) for name, relevance in maps.items()]
    save_panels(path, panels, marker=marker, quantile=quantile, columns=columns, title=title, on_image=on_image)


def save_panels(path, panels, marker=None, quantile=0.995, columns=4, title=None, on_image=False):
    """Write :class:`Panel` s to a PNG, row by row, each titled with what it shows (a map's title gets its sum and
    clipping value).  The file appears only when it is complete (:func:`reflrp.files.written`)."""
    figure_class = require_matplotlib()
    if not panels:
        raise ReflrpError("save_panels: no panels to draw")
    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    # no pyplot: the caller's backend is left alone; the constrained layout keeps every title inside the figure
    figure = figure_class(figsize=(2.6 * columns, 2.8 * rows + (0.3 if title else 0)), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        name = panel.title
        if panel.relevance is None:
            ax.imshow(panel.image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            relevance = panel.relevance
            limit = symmetric_limit(relevance, quantile)
            over = on_image and panel.image is not None
            shown = overlay(panel.image, relevance, limit=limit) if over else colorize(relevance, limit=limit)
            ax.imshow(shown, interpolation="nearest")
            name = f"{name}\nsum {relevance.sum():+.3g}, clip {limit:.2g}"
        if marker is not None:
            ax.plot(marker[1], marker[0], marker="s", markersize=7, markerfacecolor="none",
                    markeredgecolor="lime", markeredgewidth=1.5)
        ax.set_title(name, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    with written(os.fspath(path)) as partial:
        figure.savefig(partial, dpi=110, format="png")


def volume_planes(volume, voxel):
    """The three orthogonal planes of a (D, H, W) volume through ``voxel`` (depth, row, col): axial ``(H, W)`` at
    its depth, coronal ``(D, W)`` at its row, sagittal ``(D, H)`` at its column."""
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ReflrpError(f"volume_planes: the volume must be (D, H, W), got shape {volume.shape}")
    if len(voxel) != 3 or not all(0 <= v < n for v, n in zip(voxel, volume.shape)):
        raise ReflrpError(f"volume_planes: voxel {tuple(voxel)} is outside the {volume.shape} volume")
    z, y, x = (int(v) for v in voxel)
    return {"axial": volume[z], "coronal": volume[:, y], "sagittal": volume[:, :, x]}


def save_volume(path, relevance, voxel, image=None, quantile=0.995, title=None):
    """Write the relevance of a volume as three orthogonal planes through ``voxel`` (a slice grid) to a PNG.

    Parameters
    ----------
    path : str
    relevance : ndarray of shape (D, H, W) or (C, D, H, W)
        Channels are summed.  One clipping value for the three planes: the quantile of the whole volume's ``|R|``.
    voxel : (depth, row, col)
        Where the planes cross (the explained voxel, for instance); marked on every plane.
    image : ndarray of shape (D, H, W) or (C, D, H, W), optional
        The input volume in [0, 1] (channels averaged): its planes are drawn above the relevance's.
    """
    figure_class = require_matplotlib()
    relevance = np.asarray(relevance, dtype=np.float64)
    relevance = relevance.sum(axis=0) if relevance.ndim == 4 else relevance
    planes = volume_planes(relevance, voxel)
    images = None
    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        images = volume_planes(image.mean(axis=0) if image.ndim == 4 else image, voxel)
    limit = symmetric_limit(relevance, quantile)
    z, y, x = (int(v) for v in voxel)
    crossing = {"axial": (y, x), "coronal": (z, x), "sagittal": (z, y)}  # (row, col) of the voxel in each plane
    rows = 2 if images is not None else 1
    figure = figure_class(figsize=(7.8, 2.9 * rows + (0.3 if title else 0)), layout="constrained")
    axes = figure.subplots(rows, 3, squeeze=False)
    for k, (name, plane) in enumerate(planes.items()):
        drawn = [(axes[-1, k], colorize(plane, limit=limit), f"{name}: sum {plane.sum():+.3g}, clip {limit:.2g}")]
        if images is not None:
            drawn.append((axes[0, k], images[name], f"input, {name}"))
        for ax, shown, caption in drawn:
            ax.axis("off")
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.plot(crossing[name][1], crossing[name][0], marker="s", markersize=7, markerfacecolor="none",
                    markeredgecolor="lime", markeredgewidth=1.5)
            ax.set_title(caption, fontsize=8)
    figure.suptitle(title or f"relevance through voxel {tuple(voxel)} (red +, blue -)", fontsize=9)
    with written(os.fspath(path)) as partial:
        figure.savefig(partial, dpi=110, format="png")


def save_signal(path, relevance, signal=None, quantile=0.995, title=None, names=None):
    """Write the relevance of a signal over time to a PNG: one row per channel, the relevance as a colour band
    under the signal's trace.

    Parameters
    ----------
    path : str
    relevance : ndarray of shape (C, L)
        One clipping value for all channels (the quantile of ``|R|`` over the whole map).
    signal : ndarray of shape (C, L), optional
        The input, drawn as a line over its channel's band.
    names : sequence of str, optional
        The channels' names (``"channel 0"``, ... by default).
    """
    figure_class = require_matplotlib()
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 2:
        raise ReflrpError(f"save_signal: relevance must be (C, L), got shape {relevance.shape}")
    if signal is not None and np.shape(signal) != relevance.shape:
        raise ReflrpError(f"save_signal: signal {np.shape(signal)} and relevance {relevance.shape} differ in shape")
    names = [f"channel {c}" for c in range(len(relevance))] if names is None else list(names)
    if len(names) != len(relevance):
        raise ReflrpError(f"save_signal: {len(names)} names for {len(relevance)} channels")
    limit = symmetric_limit(relevance, quantile)
    figure = figure_class(figsize=(8.0, 1.3 * len(relevance) + 0.5), layout="constrained")
    axes = figure.subplots(len(relevance), 1, squeeze=False, sharex=True)[:, 0]
    length = relevance.shape[1]
    for c, ax in enumerate(axes):
        low, high = (float(np.min(signal[c])), float(np.max(signal[c]))) if signal is not None else (0.0, 1.0)
        high = high if high > low else low + 1.0
        ax.imshow(colorize(relevance[c][None, :], limit=limit), aspect="auto", interpolation="nearest",
                  extent=(-0.5, length - 0.5, low, high))
        if signal is not None:
            ax.plot(np.arange(length), signal[c], color="black", linewidth=0.8)
        ax.set_ylim(low, high)
        ax.set_yticks([])
        ax.set_ylabel(f"{names[c]}\n{relevance[c].sum():+.3g}", fontsize=7, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (samples)", fontsize=8)
    figure.suptitle(title or f"relevance over time (red +, blue -; clip {limit:.2g})", fontsize=9)
    with written(os.fspath(path)) as partial:
        figure.savefig(partial, dpi=110, format="png")
