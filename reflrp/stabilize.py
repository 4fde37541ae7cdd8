"""The one stabilizer every rule divides by (see docs/conventions.md).

``stabilize(z, epsilon) = z + epsilon * sign(z)`` with ``sign(0) = +1``.  With ``epsilon = 0`` a zero
denominator stays zero; :func:`divide` then drops that unit's relevance instead of producing NaN.
"""

from __future__ import annotations

import numpy as np


def stabilize(z, epsilon):
    """``z + epsilon * sign(z)``, ``sign(0) = +1``.

    Parameters
    ----------
    z : ndarray
    epsilon : float
        >= 0.

    Returns
    -------
    ndarray shaped like ``z``
    """
    if epsilon == 0:
        return z
    shift = np.where(z >= 0, z.dtype.type(epsilon), z.dtype.type(-epsilon))
    return np.add(z, shift, out=shift)


def denominator(z, epsilon):
    """What a rule divides by: :func:`stabilize` for a number ``epsilon``; ``epsilon(z)`` when it is a callable (a
    profile reproducing another library's stabilizer, e.g. iNNvestigate's ``z + 1e-7 * [z == 0]``)."""
    return epsilon(z) if callable(epsilon) else stabilize(z, epsilon)


def divide(r, denominator):
    """``r / denominator`` where the denominator is non-zero, 0 where it is zero.

    Returns
    -------
    s : ndarray
        The quotient.
    dropped : ndarray or None
        ``r`` where the denominator is zero, 0 elsewhere (the relevance that has nowhere to go); None when no
        denominator is zero.
    """
    if denominator.all():  # no zero (one pass, no temporary)
        return r / denominator, None
    zero = denominator == 0
    s = np.where(zero, 0, r) / np.where(zero, 1, denominator)
    return s, np.where(zero, r, 0)
