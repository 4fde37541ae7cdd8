"""Array helpers shared by layers and rules (numpy only; imports nothing from reflrp)."""

from __future__ import annotations


def unbroadcast(x, shape):
    """``x`` (one row per sample or explanation) summed over the axes along which an operand of per-sample
    ``shape`` was broadcast to ``x``'s shape: what that operand receives."""
    lead = x.ndim - 1 - len(shape)
    axes = tuple(range(1, 1 + lead)) + tuple(1 + lead + k for k, n in enumerate(shape)
                                             if n == 1 and x.shape[1 + lead + k] != 1)
    summed = x.sum(axis=axes, keepdims=True) if axes else x
    return summed.reshape((len(x), *shape))


__all__ = ["unbroadcast"]
