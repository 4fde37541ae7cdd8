"""Row helpers the kernels share: loops over 1-D views indexed from 0, which vectorize."""

from __future__ import annotations

from reflrp._jit import jit


@jit
def copy_row(dst, src):
    """``dst[:] = src`` (equal lengths)."""
    for k in range(len(dst)):
        dst[k] = src[k]


@jit
def zero_row(dst):
    """``dst[:] = 0``."""
    for k in range(len(dst)):
        dst[k] = 0
