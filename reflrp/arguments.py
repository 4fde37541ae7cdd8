"""Command-line arguments as reflrp objects: rule and composite specifications (``epsilon:epsilon=0.01``) and
targets (``3``, ``0,6,6``, ``argmax:0``, ``mask:FILE.npy``, ...), each checked with a one-line error."""

from __future__ import annotations

import inspect
import os

from reflrp import composites, io, rules, targets
from reflrp.errors import ReflrpError

MAX_INPUT_BYTES = 4 << 30
RULES = {name.lower(): getattr(rules, name) for name in
         ("Epsilon", "ZPlus", "AlphaBeta", "Gamma", "ZBox", "Flat", "WSquare")}
COMPOSITES = {name.lower(): getattr(composites, name) for name in
              ("EpsilonPlus", "EpsilonAlpha2Beta1", "EpsilonPlusFlat", "EpsilonAlpha2Beta1Flat", "EpsilonGammaBox",
               "AttnLRP", "CPLRP")}

def _value(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(text)
    except ValueError:
        raise ReflrpError(f"{text!r} is not a number or true/false") from None


def parse_spec(spec, table, what):
    """``"name"`` or ``"name:key=value,key=value"`` -> an object from ``table``."""
    name, _, args = spec.partition(":")
    factory = table.get(name.strip().lower())
    if factory is None:
        raise ReflrpError(f"unknown {what} {name!r}; choose from {', '.join(sorted(table))}")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ReflrpError(f"{what} argument {item!r} must look like key=value")
        kwargs[key.strip()] = _value(value.strip())
    parameters = inspect.signature(factory).parameters.values()
    known = [p.name for p in parameters]
    unknown = sorted(set(kwargs) - set(known))
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in kwargs]
    if unknown or missing:
        problem = f"has no parameter {unknown[0]!r}" if unknown else f"needs {missing[0]}"
        raise ReflrpError(f"{what} {name.strip().lower()} {problem}; its parameters are {', '.join(known)}")
    return factory(**kwargs)


def parse_target(text):
    """``3`` (class), ``predicted`` (each sample's argmax class), ``0,6,6`` (index), ``mask:FILE.npy``,
    ``region:CLASS:FILE.npy``, ``argmax:CLASS``,
    ``pixels:CLASS:R,C;R,C`` (one explanation per pixel), ``seed:FILE.npy``."""
    kind, _, rest = text.partition(":")
    if kind == "mask":
        return targets.Mask(read_npy_file(rest, "target mask", "b"))
    if kind == "seed":
        return targets.Seed(read_npy_file(rest, "target seed", "f"))
    if kind == "region":
        cls, _, path = rest.partition(":")
        return targets.Region(_int(cls, "region class"), read_npy_file(path, "target region", "b"))
    if kind == "argmax":
        return targets.ArgmaxRegion(_int(rest, "argmax class"))
    if kind == "pixels":
        cls, _, listing = rest.partition(":")
        pixels = []
        for item in filter(None, listing.split(";")):
            row, sep, col = item.partition(",")
            if not sep:
                raise ReflrpError(f"target pixel {item!r} must look like ROW,COL")
            pixels.append((_int(row, "pixel row"), _int(col, "pixel column")))
        return targets.Pixels(_int(cls, "pixels class"), pixels)
    if text == "predicted":
        return targets.Predicted()
    parts = text.split(",")
    values = tuple(_int(p, "target") for p in parts)
    return values[0] if len(values) == 1 else targets.Index(values)


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise ReflrpError(f"{what} {text!r} is not an integer") from None


def read_npy_file(path, what, kinds):
    """An array from a ``.npy`` file, its header checked (dtype kind, size) before anything is read."""
    where = io.existing_file(path, what)
    with open(where, "rb") as handle:
        return io.read_npy(handle, os.path.getsize(where), f"{what} {where!r}", kinds, MAX_INPUT_BYTES)
