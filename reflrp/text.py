"""Relevance per token, as highlighted text: in the terminal (24-bit colour) and as HTML.

A language model explained from its input embeddings has relevance of shape (tokens, width) per sample; a token's
relevance is the sum over the width (:func:`per_token`).  Tokens are coloured as heatmaps are (:mod:`reflrp.viz`):
white at zero, red positive, blue negative, full colour at a quantile of ``|R|`` or a given ``limit``.  Only numpy;
the HTML needs nothing to open (no script, no network).
"""

from __future__ import annotations

import html as _html
import os

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.files import written
from reflrp.viz import colorize, symmetric_limit


def per_token(relevance):
    """Relevance of shape (tokens, width) or (N, tokens, width) summed over the width."""
    relevance = np.asarray(relevance)
    if relevance.ndim not in (2, 3):
        raise ReflrpError(f"per_token: relevance must be (tokens, width) or (N, tokens, width), got shape "
                          f"{relevance.shape}")
    return relevance.sum(axis=-1, dtype=np.float64)


def _checked(tokens, relevance, what):
    tokens = list(tokens)
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 1:
        raise ReflrpError(f"{what}: relevance must hold one value per token, got shape {relevance.shape} (sum a "
                          f"(tokens, width) map with per_token first)")
    if len(tokens) != len(relevance):
        raise ReflrpError(f"{what}: {len(tokens)} tokens but {len(relevance)} relevance values")
    if not all(isinstance(t, str) for t in tokens):
        raise ReflrpError(f"{what}: tokens must be strings")
    if not np.all(np.isfinite(relevance)):
        raise ReflrpError(f"{what}: relevance contains NaN or Inf")
    return tokens, relevance


def _colours(relevance, quantile, limit):
    """Background colours (0-255) per token, a readable text colour on each (white on dark), and the limit."""
    limit = symmetric_limit(relevance, quantile) if limit is None else float(limit)
    rgb = colorize(relevance[None, :], limit=limit)[0]
    dark = rgb @ np.array([0.299, 0.587, 0.114]) < 0.55
    return np.rint(rgb * 255).astype(int), np.where(dark, 255, 0), limit


def terminal(tokens, relevance, quantile=0.995, limit=None, separator=" "):
    """The tokens on coloured backgrounds (ANSI 24-bit colour escapes), joined by ``separator``.

    Parameters
    ----------
    tokens : sequence of str
    relevance : ndarray of shape (tokens,)
    quantile, limit
        Colour scale, as :func:`reflrp.viz.colorize`.
    separator : str
    """
    tokens, relevance = _checked(tokens, relevance, "terminal")
    colours, ink, _ = _colours(relevance, quantile, limit)
    return separator.join(f"\x1b[38;2;{i};{i};{i}m\x1b[48;2;{r};{g};{b}m{token}\x1b[0m"
                          for token, (r, g, b), i in zip(tokens, colours, ink))


def html(tokens, relevance, quantile=0.995, limit=None, separator=" ", title=None):
    """An HTML fragment: each token a ``<span>`` on its colour, its relevance in its ``title`` (shown on hover),
    and the colour scale.

    Parameters
    ----------
    tokens : sequence of str
    relevance : ndarray of shape (tokens,)
    quantile, limit
        Colour scale, as :func:`reflrp.viz.colorize`.
    separator : str
    title : str, optional
        A caption above the text.
    """
    tokens, relevance = _checked(tokens, relevance, "html")
    colours, ink, limit = _colours(relevance, quantile, limit)
    spans = [f'<span style="background:rgb({r},{g},{b});color:rgb({i},{i},{i});padding:1px 2px;'
             f'border-radius:3px" title="{value:+.4g}">{_html.escape(token)}</span>'
             for token, value, (r, g, b), i in zip(tokens, relevance, colours, ink)]
    caption = f"<div><b>{_html.escape(title)}</b></div>" if title else ""
    scale = (f'<div style="font-size:80%;color:#555">red positive, blue negative; full colour at |R| = {limit:.3g}; '
             f"sum {relevance.sum():+.4g}</div>")
    return (f'<div class="reflrp-tokens" style="font-family:monospace;line-height:1.9">{caption}'
            f"<div>{_html.escape(separator).join(spans)}</div>{scale}</div>")


def save_html(path, tokens, relevance, quantile=0.995, limit=None, separator=" ", title=None):
    """A self-contained HTML page of :func:`html` (written whole or not at all)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ReflrpError(f"save_html: path must be a file name, got {type(path).__name__}")
    body = html(tokens, relevance, quantile, limit, separator, title)
    page = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_html.escape(title or "relevance")}</title>'
            f"</head><body>{body}</body></html>\n")
    with written(os.fspath(path)) as partial, open(partial, "w", encoding="utf-8") as f:
        f.write(page)


__all__ = ["html", "per_token", "save_html", "terminal"]
