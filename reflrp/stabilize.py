"""The one place denominators are stabilized (see docs/conventions.md).

Three conventions, chosen per rule by its ``stabilizer`` knob:

* ``"sign"`` (the default): ``stabilize(z, epsilon) = z + epsilon * sign(z)`` with ``sign(0) = +1``;
* ``"zero"``: ``z + epsilon * [z == 0]``, a safe division that leaves every non-zero denominator as it is (the
  convention of iNNvestigate's ``safe_divide``);
* ``"plus"``: ``z + epsilon`` whatever the sign (LXT's; a denominator ``z = -epsilon`` becomes zero).

With ``epsilon = 0``, or ``"plus"`` at ``z = -epsilon``, a zero denominator stays zero; :func:`divide` then drops
that unit's relevance instead of producing NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reflrp.kernels import fused

#: The stabilizer conventions (a rule's ``stabilizer`` knob).
STABILIZERS = ("sign", "zero", "plus")


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


class Stabilizer(NamedTuple):
    """A rule's stabilizer: ``epsilon`` (>= 0) and its convention ``mode`` (one of :data:`STABILIZERS`)."""

    epsilon: float
    mode: str = "sign"

    def denominator(self, z):
        """What a rule divides by: :func:`stabilize` (``"sign"``), ``z + epsilon * [z == 0]`` (``"zero"``) or
        ``z + epsilon`` (``"plus"``)."""
        if self.mode == "zero":
            return z + np.where(z == 0, z.dtype.type(self.epsilon), z.dtype.type(0))
        if self.mode == "plus":
            return z + z.dtype.type(self.epsilon)
        return stabilize(z, self.epsilon)

    def quotient(self, r, z, sample=None):
        """``divide(r, denominator(z)[sample])`` in one pass over the arrays, bit for bit (``sample``: see
        :func:`reflrp.steps.rows`)."""
        mode = {"sign": fused.SIGN if self.epsilon else fused.NONE, "zero": fused.ZERO, "plus": fused.PLUS}[self.mode]
        return fused.quotient(r, z, z.dtype.type(self.epsilon), mode, sample)


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
