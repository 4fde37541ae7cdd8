"""Targets: which outputs an explanation starts from.

A target turns the model's output (the explained tensor, below any output activation) into *selections*:
``(sample, weights)`` pairs, one per explanation.  The seed of an explanation is ``weights * output``
(``seed="value"``, the default: relevance sums to the selected logits) or ``weights`` (``seed="unit"``).
Most targets make one selection per sample; :class:`Pixels` makes several per sample, explained in one
batched backward pass that shares one forward pass.

Plain values are accepted by :func:`reflrp.explain` and converted by :func:`as_target`:

* an ``int``: :class:`Class`;
* a 1-D integer array, or a list of integers, with one entry per sample: :class:`Classes`;
* a tuple of ints: :class:`Index` (e.g. ``(class, row, col)``);
* a boolean array: :class:`Mask`;
* a float array: :class:`Seed` (used as given);
* the string ``"predicted"``: :class:`Predicted` (each sample's largest output).

For language models: a token's logit is an :class:`Index` ``(position, token)`` (or a :class:`Class` of a model that
returns the last position's logits), a span of tokens a :class:`Span`.

The same values are accepted everywhere a target is: :func:`reflrp.explain`, :func:`reflrp.explain_dataset`,
:func:`reflrp.compare` and the command line's ``--target`` (docs/segmentation.md lists them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError


def _is_int(v):
    return validate.is_integer(v)


def _pixel_list(value, label):
    """A non-empty list of positions of one length (1 to 3 ints: a signal's sample, an image's (row, col), a
    volume's (depth, row, col)), as a tuple of int tuples."""
    pixels = value.tolist() if isinstance(value, np.ndarray) else value
    if not (isinstance(pixels, (list, tuple)) and pixels
            and all(isinstance(p, (list, tuple)) and 1 <= len(p) <= 3 and all(_is_int(v) for v in p) for p in pixels)
            and len({len(p) for p in pixels}) == 1):
        raise ReflrpError(f"{label} must be a non-empty list of positions of one length, (row, col) int pairs for "
                          f"an image (one int for a signal, three for a volume), got {value!r}")
    return tuple(tuple(int(v) for v in p) for p in pixels)


def _class_array(value, label):
    """One class number per sample, as int64: integers only (no booleans, no floats), none beyond int64."""
    if isinstance(value, (list, tuple)) and not all(_is_int(v) for v in value):
        raise ReflrpError(f"{label} must hold one integer class per sample, got {list(value)!r}")
    ks = np.asarray(value) if isinstance(value, (list, tuple, np.ndarray)) else None
    if ks is None or ks.ndim != 1 or (ks.size and ks.dtype.kind not in "iu"):
        raise ReflrpError(f"{label} must be a 1-D integer array (one class per sample), got {value!r}")
    if ks.size and ks.dtype.kind == "u" and ks.max() > np.iinfo(np.int64).max:
        raise ReflrpError(f"{label}: class {ks.max()} is out of range")
    return ks.astype(np.int64)


def _index(value, label):
    """A non-empty tuple of ints."""
    if not (isinstance(value, tuple) and value and all(_is_int(v) for v in value)):
        raise ReflrpError(f"{label} must be a non-empty tuple of ints, got {value!r}")
    return value


def _class_number():
    """A class-number field: an int >= 0 (floats and booleans are refused)."""
    return validate.field(validate.class_number)


class Target:
    """Base class: ``check`` validates against the per-sample output shape before any kernel runs;
    ``select`` returns ``(sample, weights)`` for the output values."""

    def __post_init__(self):
        validate.check_fields(self, prefix="target ")

    def check(self, output_shape, n):
        raise ReflrpError(f"{type(self).__name__} is not a usable target; use Class, Classes, Index, Mask, Seed, "
                          f"Region, ArgmaxRegion or Pixels")

    def select(self, output):
        """``sample`` (M,) int64 and ``weights`` (M, *output.shape[1:]) in the output's dtype."""
        raise ReflrpError(f"{type(self).__name__} is not a usable target")

    def count(self, n):
        """M, the number of explanations for a batch of ``n`` samples."""
        return n

    def parts(self, output_shape):
        """Where each explanation selects, for the receptive cone (:mod:`reflrp.cone`): a list of
        ``(box, target, slots, samples)``, ``target`` making explanations ``slots`` (of ``count(1)``) of samples
        ``samples`` (a tuple of indices; None: of every sample) and selecting nothing outside ``box`` (one
        sample's ``((lo, hi) per axis)``, the class axis whole) whatever the output's values; a box is None when
        it is the whole output.  None: the target selects by value, or the same everywhere."""
        return None

    def only(self, slots):
        """The target making explanations ``slots`` of each sample alone."""
        return self

    def for_samples(self, start, stop, output_ndim):
        """The target for samples ``start .. stop - 1`` of a dataset (what :func:`reflrp.explain_dataset` gives
        each batch); ``output_ndim`` is the number of axes of one sample's output.  Targets that hold one entry per
        sample slice it; the others apply to every sample alike."""
        return self


def _bounding_box(positions, output_shape):
    """The box of one sample's output holding every class at ``positions`` (a boolean map of the positions, or a
    list of position tuples); None for an output without positions or when the box is the whole output."""
    if len(output_shape) < 2:
        return None
    if isinstance(positions, np.ndarray):
        found = np.nonzero(positions)
        spans = tuple((int(axis.min()), int(axis.max()) + 1) for axis in found)
    else:
        spans = tuple((min(axis), max(axis) + 1) for axis in zip(*positions))
    box = ((0, output_shape[0]), *spans)
    return None if box == tuple((0, n) for n in output_shape) else box


def _class_mask(output_shape, k, what):
    if not 0 <= k < output_shape[0]:
        raise ReflrpError(f"target {what} {k} is out of range: the output has {output_shape[0]} classes")


@dataclass(frozen=True)
class Class(Target):
    """Class ``k`` for every sample: for a (K,) output its logit; for a (K, H, W) output every pixel of
    channel ``k``."""

    k: int = _class_number()

    def check(self, output_shape, n):
        _class_mask(output_shape, int(self.k), "class")

    def select(self, output):
        weights = np.zeros_like(output)
        weights[:, int(self.k)] = 1
        return np.arange(len(output)), weights


@dataclass(frozen=True, eq=False)
class Classes(Target):
    """One class per sample (an integer array of length N)."""

    ks: np.ndarray = validate.field(_class_array)

    def check(self, output_shape, n):
        ks = self.ks
        if ks.shape != (n,):
            raise ReflrpError(f"target holds {ks.size} class indices for a batch of {n}; give one per sample")
        bad = (ks < 0) | (ks >= output_shape[0])
        if bad.any():
            raise ReflrpError(
                f"target class {ks[bad][0]} (sample {np.flatnonzero(bad)[0]}) is out of range: the output has "
                f"{output_shape[0]} classes"
            )

    def select(self, output):
        weights = np.zeros_like(output)
        weights[np.arange(len(output)), np.asarray(self.ks)] = 1
        return np.arange(len(output)), weights

    def for_samples(self, start, stop, output_ndim):
        return Classes(self.ks[start:stop])


@dataclass(frozen=True)
class Predicted(Target):
    """Each sample's predicted class: the largest of its (classes,) output (the first on ties)."""

    def check(self, output_shape, n):
        if len(output_shape) != 1:
            raise ReflrpError(f"target Predicted needs a (classes,) output per sample, got {tuple(output_shape)}; "
                              f"for segmentation use ArgmaxRegion (argmax:CLASS on the command line)")

    def select(self, output):
        weights = np.zeros_like(output)
        weights[np.arange(len(output)), np.argmax(output, axis=1)] = 1
        return np.arange(len(output)), weights


@dataclass(frozen=True)
class Index(Target):
    """One output entry per sample, by its index into one sample's output, e.g. ``(class, row, col)``."""

    index: tuple = validate.field(_index)

    def check(self, output_shape, n):
        if len(self.index) != len(output_shape):
            raise ReflrpError(
                f"target index {self.index} has {len(self.index)} entries, one sample's output has "
                f"{len(output_shape)} axes {tuple(output_shape)}"
            )
        for axis, (v, size) in enumerate(zip(self.index, output_shape)):
            if not 0 <= v < size:
                raise ReflrpError(
                    f"target index {self.index} is outside the output {tuple(output_shape)} (axis {axis + 1})"
                )

    def select(self, output):
        weights = np.zeros_like(output)
        weights[(slice(None),) + tuple(int(v) for v in self.index)] = 1
        return np.arange(len(output)), weights

    def parts(self, output_shape):
        return [(_bounding_box([tuple(int(v) for v in self.index[1:])], output_shape), self, (0,), None)]


Pixel = Index  # (class, row, col) into a segmentation map
Voxel = Index  # (class, depth, row, col) into a volume's segmentation map


@dataclass(frozen=True, eq=False)
class Mask(Target):
    """The sum of the outputs a boolean mask selects (shaped like one sample's output, or the whole batch)."""

    mask: np.ndarray

    def check(self, output_shape, n):
        mask = np.asarray(self.mask)
        if mask.dtype != bool:
            raise ReflrpError(f"target mask must be boolean, got {mask.dtype}")
        if mask.shape not in (tuple(output_shape), (n, *output_shape)):
            raise ReflrpError(
                f"target mask has shape {mask.shape}; the output is {(n, *output_shape)} (per sample "
                f"{tuple(output_shape)})"
            )
        if not mask.any():
            raise ReflrpError("target mask selects nothing")

    def select(self, output):
        weights = np.broadcast_to(np.asarray(self.mask), output.shape).astype(output.dtype)
        return np.arange(len(output)), weights

    def for_samples(self, start, stop, output_ndim):
        mask = np.asarray(self.mask)
        return Mask(mask[start:stop]) if mask.ndim == output_ndim + 1 else self


@dataclass(frozen=True, eq=False)
class Seed(Target):
    """An explicit seed, used as given (``seed="unit"`` or ``"value"`` does not apply)."""

    seed: np.ndarray

    def check(self, output_shape, n):
        seed = np.asarray(self.seed)
        if seed.dtype.kind != "f":
            raise ReflrpError(f"target seed must be a float array, got {seed.dtype}")
        if seed.shape not in (tuple(output_shape), (n, *output_shape)):
            raise ReflrpError(f"target seed has shape {seed.shape}; the output is {(n, *output_shape)}")
        if not np.all(np.isfinite(seed)):
            raise ReflrpError("target seed contains NaN or Inf")

    def select(self, output):
        with np.errstate(over="ignore"):  # a seed beyond the output's dtype is refused by explain, as inf
            return np.arange(len(output)), np.broadcast_to(self.seed, output.shape).astype(output.dtype)

    def for_samples(self, start, stop, output_ndim):
        seed = np.asarray(self.seed)
        return Seed(seed[start:stop]) if seed.ndim == output_ndim + 1 else self


def _region_mask(mask, output_shape, cls, n):
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ReflrpError(f"target region must be a boolean mask, got {mask.dtype}")
    if len(output_shape) < 2:
        raise ReflrpError(f"a region target needs a (classes, ...) map, (classes, H, W) for an image, got "
                          f"{tuple(output_shape)}")
    if mask.shape not in (tuple(output_shape[1:]), (n, *output_shape[1:])):
        raise ReflrpError(f"target region has shape {mask.shape}, the output map is {tuple(output_shape[1:])} (one "
                          f"region for every sample) or {(n, *output_shape[1:])} (one per sample)")
    per_sample = mask.ndim == len(output_shape)
    regions = mask.reshape(len(mask) if per_sample else 1, -1)
    empty = np.flatnonzero(~regions.any(axis=1))
    if empty.size:
        raise ReflrpError("target region selects no pixel" + (f" in sample {empty[0]}" if per_sample else ""))
    _class_mask(output_shape, cls, "class")


@dataclass(frozen=True, eq=False)
class Region(Target):
    """Segmentation: the sum of class ``cls``'s logits over a boolean (H, W) region, the same for every sample, or
    over one region per sample (N, H, W); for volumes (D, H, W) or (N, D, H, W), for signals (L,) or (N, L)."""

    cls: int = _class_number()
    mask: np.ndarray

    def check(self, output_shape, n):
        _region_mask(self.mask, output_shape, self.cls, n)

    def select(self, output):
        weights = np.zeros_like(output)
        weights[:, int(self.cls)] = np.asarray(self.mask)
        return np.arange(len(output)), weights

    def parts(self, output_shape):
        mask = np.asarray(self.mask)
        if mask.ndim == len(output_shape):  # one region per sample: each sample on its own cone
            return [(_bounding_box(region, output_shape), self.for_samples(n, n + 1, len(output_shape)), (0,), (n,))
                    for n, region in enumerate(mask)]
        return [(_bounding_box(mask, output_shape), self, (0,), None)]

    def for_samples(self, start, stop, output_ndim):
        mask = np.asarray(self.mask)
        return Region(self.cls, mask[start:stop]) if mask.ndim == output_ndim else self


@dataclass(frozen=True)
class ArgmaxRegion(Target):
    """Segmentation: class ``cls``'s logits summed over the pixels (voxels) where it is the argmax over classes
    (first class on ties).  With a single output channel (a sigmoid map), the pixels where the logit is > 0."""

    cls: int = _class_number()

    def check(self, output_shape, n):
        if len(output_shape) < 2:
            raise ReflrpError(f"an argmax-region target needs a (classes, ...) map, (classes, H, W) for an image, "
                              f"got {tuple(output_shape)}")
        _class_mask(output_shape, int(self.cls), "class")

    def select(self, output):
        k = int(self.cls)
        region = output[:, 0] > 0 if output.shape[1] == 1 else np.argmax(output, axis=1) == k
        empty = np.flatnonzero(~region.reshape(len(region), -1).any(axis=1))
        if empty.size:
            raise ReflrpError(f"target ArgmaxRegion({k}) selects no pixel in sample {empty[0]}: class {k} is the "
                              f"argmax nowhere{' (no logit > 0)' if output.shape[1] == 1 else ''}")
        weights = np.zeros_like(output)
        weights[:, k] = region
        return np.arange(len(output)), weights


@dataclass(frozen=True, eq=False)
class Pixels(Target):
    """Segmentation: several pixels (voxels, samples of a signal) of class ``cls``, one explanation each, for every
    sample.

    Explained in one batched backward pass sharing one forward pass.  The explanation holds one map per
    (sample, pixel), sample-major: row ``n * K + k`` is pixel ``k`` of sample ``n``.

    Parameters
    ----------
    cls : int
    pixels : sequence of (row, col); (depth, row, col) for a volume, (position,) for a signal
    """

    cls: int = _class_number()
    pixels: tuple = validate.field(_pixel_list)

    def count(self, n):
        return n * len(self.pixels)

    @classmethod
    def from_mask(cls, k, mask):
        """Every pixel of a boolean (H, W) mask (a (D, H, W) volume's voxels, an (L,) signal's samples), in
        row-major order."""
        if not isinstance(mask, np.ndarray) or mask.dtype != bool or not 1 <= mask.ndim <= 3:
            shown = f"{mask.dtype} array of shape {mask.shape}" if isinstance(mask, np.ndarray) else repr(mask)
            raise ReflrpError(f"Pixels.from_mask: mask must be a boolean (H, W) array ((D, H, W) for a volume, (L,) "
                              f"for a signal), got {shown}")
        return cls(k, tuple(zip(*(axis.tolist() for axis in np.nonzero(mask)))))

    def check(self, output_shape, n):
        dims = len(self.pixels[0])
        if len(output_shape) != 1 + dims:
            raise ReflrpError(f"target positions have {dims} coordinates; the output map {tuple(output_shape)} "
                              f"needs {len(output_shape) - 1}" if len(output_shape) >= 2 else
                              f"a pixels target needs a (classes, H, W) output, got {tuple(output_shape)}")
        _class_mask(output_shape, int(self.cls), "class")
        for position in self.pixels:
            if not all(0 <= v < size for v, size in zip(position, output_shape[1:])):
                shown = "x".join(map(str, output_shape[1:]))
                raise ReflrpError(f"target pixel {position} is outside the {shown} output")

    def select(self, output):
        n, k = len(output), len(self.pixels)
        weights = np.zeros((n * k, *output.shape[1:]), dtype=output.dtype)
        for j, position in enumerate(self.pixels):
            weights[(slice(j, None, k), int(self.cls), *position)] = 1
        return np.repeat(np.arange(n), k), weights

    def parts(self, output_shape):
        return [(_bounding_box([position], output_shape), self.only((j,)), (j,), None)
                for j, position in enumerate(self.pixels)]

    def only(self, slots):
        return Pixels(self.cls, tuple(self.pixels[j] for j in slots))


Voxels = Pixels  # several voxels of a volume's segmentation map


def _token_ids(value, label):
    ids = validate.integers(value if isinstance(value, (tuple, list)) else (value,), label, minimum=0)
    if not ids:
        raise ReflrpError(f"{label} must name at least one token")
    return tuple(ids)


@dataclass(frozen=True)
class Span(Target):
    """A language model's logits for a span of tokens, summed: token ``token_ids[j]`` at position ``start + j`` of
    a (positions, vocabulary) output per sample (a causal model's logits at position ``p`` predict token ``p + 1``:
    to explain a continuation that begins after position ``p``, give ``start=p``).  One token is a token's logit.

    Parameters
    ----------
    start : int
        >= 0.
    token_ids : int or sequence of int
    """

    start: int = validate.field(partial(validate.integer, minimum=0))
    token_ids: tuple = validate.field(_token_ids)

    def check(self, output_shape, n):
        if len(output_shape) != 2:
            raise ReflrpError(f"target Span needs a (positions, vocabulary) output per sample, got "
                              f"{tuple(output_shape)}")
        positions, vocabulary = output_shape
        if self.start + len(self.token_ids) > positions:
            raise ReflrpError(f"target Span of {len(self.token_ids)} tokens from position {self.start} ends after "
                              f"the output's {positions} positions")
        bad = [t for t in self.token_ids if t >= vocabulary]
        if bad:
            raise ReflrpError(f"target Span: token id {bad[0]} is outside the vocabulary of {vocabulary}")

    def select(self, output):
        weights = np.zeros_like(output)
        for j, token in enumerate(self.token_ids):
            weights[:, self.start + j, token] = 1
        return np.arange(len(output)), weights


def as_target(target):
    """Convert a plain value (see the module docstring) or a :class:`Target` into a :class:`Target`."""
    if isinstance(target, Target):
        return target
    if isinstance(target, type) and issubclass(target, Target):
        raise ReflrpError(f"target must be a target, got the class {target.__name__}; did you mean "
                          f"{target.__name__}(...)?")
    if isinstance(target, str):
        if target != "predicted":
            raise ReflrpError(f"target {target!r}: the only named target is 'predicted'")
        return Predicted()
    if _is_int(target):
        return Class(int(target))
    if isinstance(target, tuple):
        return Index(target)
    if isinstance(target, list):
        return Classes(_class_array(target, "a target list"))  # a list is one class per sample; arrays say more
    if isinstance(target, np.ndarray):
        if target.dtype == bool:
            return Mask(target)
        if target.dtype.kind in "iu":
            return Classes(_class_array(target, "an integer target array"))
        if target.dtype.kind == "f":
            return Seed(target)
    raise ReflrpError(
        f"target must be an int, an int array (one per sample), an index tuple, a boolean mask, a float seed "
        f"array, 'predicted' or a reflrp.targets object, got {type(target).__name__}"
    )


__all__ = [
    "ArgmaxRegion",
    "Class",
    "Classes",
    "Index",
    "Mask",
    "Span",
    "Pixel",
    "Pixels",
    "Predicted",
    "Region",
    "Seed",
    "Target",
    "Voxel",
    "Voxels",
    "as_target",
]
