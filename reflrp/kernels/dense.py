"""Dense (fully connected) layer and its exact adjoint.

The product is taken one sample at a time (``numpy.matmul`` over a stack of 1-row matrices; a sample of several
tokens, a Linear on the last axis of (N, ..., I), as one matrix of its tokens), so a sample's bits do not depend on
what else is in the batch.
"""

from __future__ import annotations

import numpy as np


def linear_forward(a, weight):
    """Bias-free dense map ``a @ weight.T``.

    Parameters
    ----------
    a : ndarray of shape (N, I)
    weight : ndarray of shape (O, I)

    Returns
    -------
    ndarray of shape (N, O)
    """
    return np.matmul(a[:, None, :], weight.T)[:, 0, :]


def linear_adjoint(s, weight):
    """Exact transpose of :func:`linear_forward`: ``s @ weight``.

    Parameters
    ----------
    s : ndarray of shape (N, O)
    weight : ndarray of shape (O, I)

    Returns
    -------
    ndarray of shape (N, I)
    """
    return np.matmul(s[:, None, :], weight)[:, 0, :]


def tokens_forward(a, weight):
    """:func:`linear_forward` on every token of every sample: ``a @ weight.T`` with ``a`` of shape (N, T, I), one
    product per sample (the same call whatever the batch holds).

    Returns
    -------
    ndarray of shape (N, T, O)
    """
    return np.matmul(a, weight.T)


def tokens_adjoint(s, weight):
    """Exact transpose of :func:`tokens_forward`: ``s @ weight`` with ``s`` of shape (N, T, O), one product per row."""
    return np.matmul(s, weight)
