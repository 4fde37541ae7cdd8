"""The one set of argument checks every layer, rule, target, composite and profile uses, and the one way they are
applied.

Each check takes the value and a label naming its owner and argument (``"Conv2d: stride"``), returns the value
in canonical form (a Python ``int``, ``float``, ``bool`` or tuple) and raises :class:`ReflrpError` otherwise.
The frozen dataclasses of reflrp (layers, rules, composites, targets, profiles) declare each checked field with
:func:`field` and run :func:`check_fields` on construction; functions check their arguments by calling the checks
directly.
The same conventions hold everywhere:

* numpy scalars are accepted wherever Python numbers are (``np.int64(2)``, ``np.float32(0.1)``);
* booleans are never numbers (``True`` is not ``1``), and numbers are never booleans;
* floats are never integers: ``2.0`` is refused where a count, size or class number is expected (a float class
  number is a bug upstream, not something to round);
* reals are finite unless said otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from functools import partial

import numpy as np

from reflrp.errors import ReflrpError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Sizes (kernel sizes, strides, paddings, scale factors, shapes) above this are refused as configuration: no
# tensor reflrp can hold has an axis this long, and a file claiming one is corrupt or hostile.
MAX_SIZE = 1 << 24


def field(check, default=dataclasses.MISSING, *, kw_only=False):
    """A dataclass field whose value ``check(value, label)`` validates and canonicalises when the object is made
    (:func:`check_fields`)."""
    return dataclasses.field(default=default, kw_only=kw_only, metadata={"check": check})


def check_fields(obj, prefix=""):
    """Run every :func:`field` check of a frozen dataclass instance, in declaration order, labelled
    ``"<prefix><class>: <field>"``, and store the canonical values."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is not None:
            label = f"{prefix}{type(obj).__name__}: {f.name}"
            object.__setattr__(obj, f.name, check(getattr(obj, f.name), label))


def one_of(*options):
    """A check for :func:`field`: one of ``options`` (:func:`choice`)."""
    return partial(choice, options=options)


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def is_integer(value):
    """A Python or numpy integer that is not a boolean."""
    return isinstance(value, (numbers.Integral, np.integer)) and not _is_bool(value)


def integer(value, label, minimum=None, maximum=MAX_SIZE):
    """An ``int`` in ``[minimum, maximum]``."""
    if not is_integer(value):
        raise ReflrpError(f"{label} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ReflrpError(f"{label} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ReflrpError(f"{label} must be <= {maximum}, got {value}")
    return value


def class_number(value, label):
    """A class (or channel) number: an ``int >= 0``; floats are refused, not truncated."""
    return integer(value, label, minimum=0)


def real(value, label, minimum=None, maximum=None, above=None):
    """A finite ``float`` in ``[minimum, maximum]`` (and ``> above`` when given)."""
    if _is_bool(value) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ReflrpError(f"{label} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ReflrpError(f"{label} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ReflrpError(f"{label} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ReflrpError(f"{label} must be <= {maximum}, got {value!r}")
    if above is not None and value <= above:
        raise ReflrpError(f"{label} must be > {above}, got {value!r}")
    return value


def boolean(value, label):
    """``True`` or ``False`` (numpy booleans accepted); never a number or a string."""
    if not _is_bool(value):
        raise ReflrpError(f"{label} must be True or False, got {value!r}")
    return bool(value)


def choice(value, label, options):
    """One of ``options`` (strings)."""
    if not isinstance(value, str) or value not in options:
        names = [repr(o) for o in options]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ReflrpError(f"{label} must be {listed}, got {value!r}")
    return value


def integers(value, label, length=None, minimum=None, maximum=MAX_SIZE):
    """A tuple of ``int`` (from a tuple or list), of ``length`` entries when given."""
    if not isinstance(value, (tuple, list)):
        raise ReflrpError(f"{label} must be a tuple of integers, got {value!r}")
    if length is not None and len(value) != length:
        raise ReflrpError(f"{label} must have {length} entries, got {value!r}")
    return tuple(integer(v, label, minimum, maximum) for v in value)


def pair(value, label, minimum=0, maximum=MAX_SIZE):
    """An int or a pair of ints, as a pair: ``2 -> (2, 2)``."""
    if is_integer(value):
        value = (value, value)
    elif not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ReflrpError(f"{label} must be an integer or a pair of integers, got {value!r}")
    return integers(value, label, 2, minimum, maximum)


def single(value, label, minimum=0, maximum=MAX_SIZE):
    """An int or PyTorch's 1-tuple of one, as a 1-tuple: ``2 -> (2,)``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return (integer(value, label, minimum, maximum),)


def triple(value, label, minimum=0, maximum=MAX_SIZE):
    """An int or three ints, as a triple: ``2 -> (2, 2, 2)``."""
    if is_integer(value):
        value = (value, value, value)
    elif not (isinstance(value, (tuple, list)) and len(value) == 3):
        raise ReflrpError(f"{label} must be an integer or a triple of integers, got {value!r}")
    return integers(value, label, 3, minimum, maximum)


def _plain_array(value, label):
    """``value`` if it is a numpy array that is not masked (a mask would hide NaN from every check)."""
    if isinstance(value, type) and issubclass(value, np.ndarray):
        raise ReflrpError(f"{label} must be a numpy array, got the class {value.__name__}")
    if not isinstance(value, np.ndarray):
        raise ReflrpError(f"{label} must be a numpy array, got {type(value).__name__}")
    if isinstance(value, np.ma.MaskedArray):
        raise ReflrpError(f"{label} is a masked array; pass value.filled(...) with the masked entries filled in")
    return np.asarray(value)


def parameter_array(value, label, ndim, dtype=None):
    """A read-only C-contiguous copy of a float32/float64 parameter array with ``ndim`` dimensions (None: any
    number), not empty, all finite (in native byte order, whatever the given array's).

    ``dtype``, when given, is the dtype the layer's other arrays already have.
    """
    if value is None:
        raise ReflrpError(f"{label} is required")
    value = _plain_array(value, label)
    if value.dtype.kind == "f" and value.dtype.newbyteorder("=") in FLOAT_DTYPES:
        value = value.astype(value.dtype.newbyteorder("="), copy=False)
    if value.dtype not in FLOAT_DTYPES:
        raise ReflrpError(f"{label} must be float32 or float64, got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise ReflrpError(f"{label} is {value.dtype} but the layer's other arrays are {dtype}; use one dtype")
    if ndim is not None and value.ndim != ndim:
        raise ReflrpError(f"{label} must have {ndim} dimension(s), got shape {value.shape}")
    if value.size == 0:
        raise ReflrpError(f"{label} is empty (shape {value.shape})")
    if not np.all(np.isfinite(value)):
        raise ReflrpError(f"{label} contains NaN or Inf")
    copy = np.array(value, copy=True, order="C")
    copy.flags.writeable = False
    return copy


def batch(x, label, offset=0):
    """Refuse anything but a finite float32/float64 batch ``(N, ...)`` with ``N >= 1`` and no empty axis (a
    non-finite value is reported with its sample's index plus ``offset``: the batch's place in a dataset)."""
    x = _plain_array(x, label)
    if x.dtype not in FLOAT_DTYPES:
        hint = ""
        if x.dtype.kind == "f" and x.dtype.newbyteorder("=") in FLOAT_DTYPES:
            hint = f" (non-native byte order: convert with .astype('{x.dtype.newbyteorder('=').str}'))"
        raise ReflrpError(f"{label} must be float32 or float64, got {x.dtype}{hint}")
    if x.ndim < 2 or 0 in x.shape:
        raise ReflrpError(f"{label} must be a batch (N, ...) with N >= 1 and no empty axis, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        sample = offset + int(np.argmin(np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise ReflrpError(f"{label} contains NaN or Inf (sample {sample})")
    return x


def float_dtype(value, label):
    """``numpy.float32`` or ``numpy.float64`` (any spelling numpy understands), as a dtype; never a default."""
    try:
        dtype = None if value is None else np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype not in FLOAT_DTYPES:  # (numpy compares None equal to float64)
        raise ReflrpError(f"{label} must be float32 or float64, got {value!r}")
    return dtype


def string(value, label):
    """A ``str``."""
    if not isinstance(value, str):
        raise ReflrpError(f"{label} must be a string, got {type(value).__name__}")
    return value


def memory_budget():
    """Bytes this process may still allocate, as far as the system says: the smallest of physical memory, the
    cgroup's limit (containers) and the address-space limit left (``ulimit -v``); ``None`` if nothing is known."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            text = handle.read().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as handle:
                used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(max(soft - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) if limits else None


def check_memory(nbytes, what, hint=""):
    """Refuse, before allocating, what needs more than :func:`memory_budget`."""
    budget = memory_budget()
    if budget is not None and nbytes > budget:
        raise ReflrpError(f"{what} needs at least {nbytes / 2**30:.3g} GiB; this process may use at most "
                          f"{budget / 2**30:.3g} GiB{hint}")


__all__ = [
    "FLOAT_DTYPES",
    "MAX_SIZE",
    "batch",
    "boolean",
    "check_memory",
    "choice",
    "class_number",
    "float_dtype",
    "integer",
    "integers",
    "is_integer",
    "memory_budget",
    "pair",
    "parameter_array",
    "real",
    "single",
    "string",
    "triple",
]
