"""Dense (fully connected) layer and its exact adjoint.

The product is taken one sample at a time (``numpy.matmul`` over a stack of 1-row matrices), so a sample's
bits do not depend on what else is in the batch.
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
