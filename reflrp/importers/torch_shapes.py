"""The conversions of :func:`reflrp.importers.torch.from_torch` that move values rather than compute: reshapes,
permutations, slices, concatenation, the parts of ``chunk`` and ``split`` and channel shuffles (a handler takes the
converter, the fx node and the bound arguments and returns a layer, a layer and its tensors, an existing node's name,
the :class:`Parts` of a chunk or split, or None after recording in the audit why it cannot convert)."""

from __future__ import annotations

import numpy as np

from reflrp import layers as L
from reflrp import validate
from reflrp.importers.common import where as where_of
from reflrp.importers.torch_attention import concat_constant


def spatial_crop(index, shape):
    """``((top, bottom), (left, right))`` when ``index`` slices only the last two axes of a 4-D ``shape``
    (``x[:, :, t:b, l:r]``, steps of 1, constant bounds, something left), else None."""
    if shape is None or len(shape) != 4:
        return None
    index = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, slice) for i in index) or len(index) > 4:
        return None
    index = index + (slice(None),) * (4 - len(index))
    if index[0] != slice(None) or index[1] != slice(None):
        return None
    sides = []
    for part, size in zip(index[2:], shape[2:]):
        if part.step not in (None, 1) or any(v is not None and not isinstance(v, int) for v in (part.start,
                                                                                               part.stop)):
            return None
        start, stop, _ = part.indices(size)
        if stop <= start:
            return None
        sides.append((start, size - stop))
    return tuple(sides)


def slices(index, shape):
    """``[(axis, start, length)]`` for the non-batch axes a tuple of slices with steps of 1 narrows (an empty list
    when it narrows nothing), or None for any other index."""
    if shape is None:
        return None
    index = index if isinstance(index, tuple) else (index,)
    if len(index) > len(shape) or not all(isinstance(i, slice) for i in index) or index[:1] not in ((), (slice(None),)):
        return None
    found = []
    for axis, (part, size) in enumerate(zip(index, shape)):
        if part.step not in (None, 1) or any(v is not None and not validate.is_integer(v) for v in (part.start,
                                                                                                    part.stop)):
            return None
        start, stop, _ = part.indices(size)
        if stop <= start:
            return None
        if (start, stop) != (0, size):
            found.append((axis, start, stop - start))
    return found or None


def without_ellipsis(index, shape):
    """``index`` with an Ellipsis replaced by the full slices it stands for (``x[..., :n]``)."""
    parts = index if isinstance(index, tuple) else (index,)
    if shape is None or sum(part is Ellipsis for part in parts) != 1:
        return index
    k = parts.index(Ellipsis)
    return parts[:k] + (slice(None),) * (len(shape) - len(parts) + 1) + parts[k + 1:]


def new_axes(index, shape):
    """The per-sample shape of ``x[:, :, None]`` (full slices and ``None``, the batch's slice first), or None for
    any other index."""
    parts = index if isinstance(index, tuple) else (index,)
    full = slice(None)
    if shape is None or not parts or parts[0] != full or None not in parts or \
            not all(p is None or p == full for p in parts):
        return None
    sizes, made = iter(shape[1:]), []
    for part in parts[1:]:
        made.append(1 if part is None else next(sizes, None))
    made += list(sizes)
    return None if None in made else tuple(made)


def takes_all(index):
    """Whether ``index`` is full slices only (``x[:, :]``, ``x[:, 0:]``): the tensor itself."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, slice) and p.step in (None, 1) and p.start in (None, 0) and p.stop is None
               for p in parts)


def picks(index, shape):
    """``([(axis, start, length)], per-sample shape)`` for an index of the batch's full slice followed by integers
    and slices with steps of 1, at least one integer (``x[:, 0]``, a class token; ``x[:, -1, :]``, a last token):
    the axes to narrow, and the shape once the integers' axes are dropped; None for any other index."""
    index = index if isinstance(index, tuple) else (index,)
    if shape is None or len(index) > len(shape) or index[:1] != (slice(None),):
        return None
    if not any(validate.is_integer(i) for i in index[1:]):
        return None
    narrowed, kept = [], []
    for axis, size in enumerate(shape[1:], start=1):
        part = index[axis] if axis < len(index) else slice(None)
        if validate.is_integer(part):
            if not -size <= part < size:
                return None
            narrowed.append((axis, part % size, 1))
            continue
        if not isinstance(part, slice) or part.step not in (None, 1) or any(
                v is not None and not validate.is_integer(v) for v in (part.start, part.stop)):
            return None
        start, stop, _ = part.indices(size)
        if stop <= start:
            return None
        if (start, stop) != (0, size):
            narrowed.append((axis, start, stop - start))
        kept.append(stop - start)
    return (narrowed, tuple(kept)) if kept else None


def same_dtype(c, node, a, name=None):
    """``x.to(...)``, ``x.float()``, ``x.type_as(y)`` that leave the traced dtype as it is: the input itself."""
    source = a["input"]
    before, after = (v.meta.get("tensor_meta") for v in (source, node)) if hasattr(source, "op") else (None, None)
    if before is None or after is None or before.dtype != after.dtype:
        c.audit.add(where_of(node, name), f"Tensor.{node.target}", "a change of dtype inside the model is not "
                                                                 "supported (import the model in one dtype)")
        return None
    return c.tensor_input(node, source, where_of(node, name), f"Tensor.{node.target}")


def expand(c, node, a, name=None):
    """``x.expand(...)`` of a computed tensor that keeps its batch: an :class:`~reflrp.layers.Expand` to the traced
    shape."""
    source, shape = a["input"], c.shape(node)
    before = c.shape(source) if hasattr(source, "op") else None
    if shape is None or before is None or shape[0] != before[0]:
        c.audit.add(where_of(node, name), "Tensor.expand", "an expansion of the batch axis is not supported")
        return None
    return c.layer(where_of(node, name), "expand", lambda: L.Expand(tuple(shape[1:])))


def index_tensor(c, node, source, index, where):
    """``x[...]`` of a tensor: ``x[:, :, t:-b, l:-r]`` on (N, C, H, W) (a U-Net's center crop) as a Crop node; full
    slices as the tensor itself; ``None`` entries as a Reshape that adds axes; integers and slices (``x[:, 0]``, a
    class token) as Narrow nodes and a Reshape that drops the integers' axes; other slices with steps of 1 as Narrow
    nodes, one per sliced axis; any other index is reported."""
    shape = c.shape(source) if hasattr(source, "op") else None
    crop = spatial_crop(index, shape)
    if crop is not None:
        return c.add(node, where, L.Crop(crop), c.tensor_input(node, source, where, "x[...]"))
    if takes_all(index):
        return c.tensor_input(node, source, where, "x[...]")
    if new_axes(index, shape) is not None:
        return c.add(node, where, L.Reshape(new_axes(index, shape)), c.tensor_input(node, source, where, "x[...]"))
    picked = picks(index, shape)
    narrowed = picked[0] if picked is not None else slices(index, shape)
    if not narrowed and picked is None:
        c.audit.add(where, "x[...]", "indexing or slicing a tensor is supported as integers and slices with steps of "
                                     "1 of non-batch axes (x[:, 0], x[:, a:b], x[:, :, t:b, l:r]) and None (a new "
                                     "axis); other indices and steps are not")
        return None
    name = c.tensor_input(node, source, where, "x[...]")
    for k, (axis, start, length) in enumerate(narrowed):
        last = picked is None and k == len(narrowed) - 1
        name = c.add(node, where if last else f"{where}.{axis}", L.Narrow(axis, start, length), name)
    return name if picked is None else c.add(node, where, L.Reshape(picked[1]), name)


def cat(c, node, a, name=None):
    tensors = list(a["tensors"])
    dim = c.dim(node, a["dim"], where_of(node, name), "cat")
    if dim is None:
        return None
    if len(tensors) == 1:
        return c.tensor_input(node, tensors[0], where_of(node, name), "cat")
    with_constant = concat_constant(c, node, where_of(node, name), tensors, dim)
    if with_constant is not None:
        return with_constant
    return c.layer(where_of(node, name), "cat", lambda: L.Concat(axis=dim)), tensors


def flatten(c, node, a, name=None):
    where = where_of(node, name)
    source = a.get("input", node.args[0] if node.args else None)
    shape = c.shape(source) if hasattr(source, "op") else c.shape(node)
    ndim = len(shape) if shape else 2
    start, end = a["start_dim"] % ndim, a["end_dim"] % ndim
    if start == 0:
        c.audit.add(where, "flatten", "flattening the batch axis (start_dim=0) is not supported; use start_dim=1")
        return None
    return c.layer(where, "flatten", lambda: L.Flatten(start, end))


def reshape(c, node, a, name=None):
    """view / reshape: the target shape is the recorded output shape (whatever arithmetic produced it)."""
    where = where_of(node, name)
    shape, source = c.shape(node), c.shape(a["input"]) if hasattr(a["input"], "op") else None
    if shape is None or source is None or shape[0] != source[0]:
        c.audit.add(where, "reshape", f"reshapes that change the batch axis ({source} -> {shape}) are not supported")
        return None
    return c.layer(where, "reshape", lambda: L.Reshape(tuple(shape[1:])))


def reshape_function(c, node, a, name=None):
    return reshape(c, node, {"input": a["input"]}, name)


def permute(c, node, a, name=None):
    dims = a["args"][0] if len(a["args"]) == 1 and isinstance(a["args"][0], (tuple, list)) else a["args"]
    return permute_function(c, node, {"input": a["input"], "dims": a.get("dims", dims)}, name)


def permute_function(c, node, a, name=None):
    dims = tuple(a["dims"])
    ndim = len(c.shape(node) or dims)
    dims = tuple(d % ndim if isinstance(d, int) else d for d in dims)
    if dims and dims[0] != 0 and node.users and all(_unbinds_first_axis(user) for user in node.users):
        source = c.tensor_input(node, a["input"], where_of(node, name), "permute")
        return None if source is None else Moved(source, dims, c.shape(a["input"]))
    return c.layer(where_of(node, name), "permute", lambda: L.Permute(dims))


class Moved:
    """A permutation that moves the batch axis, kept until ``unbind(0)`` takes it apart (timm's ``qkv.permute(2, 0,
    3, 1, 4).unbind(0)``): the parts have the batch first again."""

    def __init__(self, source, dims, shape):
        self.source, self.dims, self.shape = source, dims, shape


def _unbinds_first_axis(node):
    if node.op != "call_method" or node.target != "unbind":
        return False
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return dim == 0


def unbind(c, node, a, name=None):
    """``x.unbind(dim)``: the parts along ``dim`` (indexed later: a Narrow and a Reshape that drops the axis); after
    a permutation that moved the batch axis (:class:`Moved`), the parts of the unpermuted tensor, permuted back."""
    where = where_of(node, name)
    source = a["input"]
    moved = c.values.get(source) if hasattr(source, "op") else None
    if isinstance(moved, Moved):
        if a["dim"] != 0 or moved.dims[1] != 0:
            c.audit.add(where, "unbind", "a permutation that moves the batch axis is supported when unbind(0) then "
                                         "brings the batch first")
            return None
        axis = moved.dims[0]
        rest = [d for d in range(len(moved.shape)) if d != axis]
        order = tuple(rest.index(d) for d in moved.dims[1:])
        return Parts(moved.source, axis, [(k, 1) for k in range(moved.shape[axis])], squeeze=moved.shape,
                     permutation=None if order == tuple(range(len(order))) else order)
    shape = c.shape(source) if hasattr(source, "op") else None
    axis = c.dim(source, a["dim"], where, "unbind") if shape is not None else None
    name_in = c.tensor_input(node, source, where, "unbind")
    if axis is None or name_in is None:
        return None
    return Parts(name_in, axis, [(k, 1) for k in range(shape[axis])], squeeze=shape)


def narrow(c, node, a, name=None):
    where = where_of(node, name)
    dim = c.dim(a["input"] if hasattr(a["input"], "op") else node, a["dim"], where, "narrow")
    if dim is None:
        return None
    return c.layer(where, "narrow", lambda: L.Narrow(dim, a["start"], a["length"]))


class Parts:
    """The value of ``chunk``, ``split`` or ``unbind``: parts of ``source`` along ``axis``, each ``(start,
    length)``; indexing one makes a :class:`~reflrp.layers.Narrow`, then for ``unbind`` a Reshape that drops the
    axis (``squeeze``: the source's shape) and a Permute (``permutation``, batch axis first)."""

    def __init__(self, source, axis, parts, squeeze=None, permutation=None):
        self.source, self.axis, self.parts = source, axis, parts
        self.squeeze, self.permutation = squeeze, permutation

    def layers(self, start, length):
        """The layers that make one part, in order."""
        made = [L.Narrow(self.axis, start, length)]
        if self.squeeze is not None:
            made.append(L.Reshape(tuple(n for k, n in enumerate(self.squeeze) if k not in (0, self.axis))))
        if self.permutation is not None:
            made.append(L.Permute(self.permutation))
        return made


def _parts(c, node, source, dim, sizes, where, what):
    axis = c.dim(source, dim, where, what) if hasattr(source, "op") else None
    name = c.tensor_input(node, source, where, what)
    if axis is None or name is None:
        return None
    starts = np.cumsum([0, *sizes[:-1]])
    return Parts(name, axis, [(int(s), int(n)) for s, n in zip(starts, sizes)])


def chunk(c, node, a, name=None):
    where = where_of(node, name)
    source = a["input"]
    shape = c.shape(source) if hasattr(source, "op") else None
    dim = a["dim"]
    if shape is None or not validate.is_integer(a["chunks"]) or not validate.is_integer(dim):
        c.audit.add(where, "chunk", "chunks and dim must be integers on a traced tensor")
        return None
    size = shape[dim]
    step = -(-size // a["chunks"])
    sizes = [min(step, size - k) for k in range(0, size, step)]
    return _parts(c, node, source, dim, sizes, where, "chunk")


def split(c, node, a, name=None):
    where = where_of(node, name)
    source, sections, dim = a["tensor"], a["split_size_or_sections"], a["dim"]
    shape = c.shape(source) if hasattr(source, "op") else None
    if shape is None or not validate.is_integer(dim):
        c.audit.add(where, "split", "dim must be an integer on a traced tensor")
        return None
    size = shape[dim]
    if validate.is_integer(sections):
        sizes = [min(sections, size - k) for k in range(0, size, sections)]
    elif isinstance(sections, (list, tuple)) and all(validate.is_integer(v) for v in sections):
        sizes = list(sections)
    else:
        c.audit.add(where, "split", f"split sizes {sections!r} are not supported (an int or a list of ints)")
        return None
    return _parts(c, node, source, dim, sizes, where, "split")


def transpose(c, node, a, name=None):
    ndim = len(c.shape(node) or ())
    dims = list(range(ndim))
    d0, d1 = (d % ndim if validate.is_integer(d) else d for d in (a["dim0"], a["dim1"]))
    if not (validate.is_integer(d0) and validate.is_integer(d1)) or 0 in (d0, d1):
        c.audit.add(where_of(node, name), "transpose", "only non-batch axes can be swapped")
        return None
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return c.layer(where_of(node, name), "transpose", lambda: L.Permute(tuple(dims)))


def roll(c, node, a, name=None):
    """``torch.roll(x, shifts, dims)`` along non-batch axes: a :class:`~reflrp.layers.Roll`."""
    ndim = len(c.shape(node) or ())
    shifts, dims = a["shifts"], a["dims"]
    shifts, dims = ((v,) if validate.is_integer(v) else v for v in (shifts, dims))
    if dims is None or not all(validate.is_integer(v) for v in (*shifts, *dims)) or len(shifts) != len(dims) or \
            any(d % ndim == 0 for d in dims):
        c.audit.add(where_of(node, name), "roll", "rolls along given non-batch axes are supported (dims named, one "
                                                   "shift each)")
        return None
    return c.layer(where_of(node, name), "roll", lambda: L.Roll(tuple(shifts), tuple(d % ndim for d in dims)))


def channel_shuffle(c, node, a, name=None):
    """``x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)``, as three routing nodes."""
    where = where_of(node, name)
    shape = c.shape(node)
    groups = a["groups"]
    if shape is None or len(shape) < 3 or not validate.is_integer(groups) or shape[1] % groups:
        c.audit.add(where, "channel_shuffle", f"{groups} groups do not divide the channels of {shape}")
        return None
    source = c.tensor_input(node, a["input"], where, "channel_shuffle")
    grouped = c.add(node, f"{where}.group", L.Reshape((groups, shape[1] // groups, *shape[2:])), source)
    dims = (0, 2, 1, *range(3, len(shape) + 1))
    swapped = c.add(node, f"{where}.transpose", L.Permute(dims), grouped)
    return c.add(node, where, L.Reshape(tuple(shape[1:])), swapped)


__all__ = ["Parts", "cat", "channel_shuffle", "chunk", "flatten", "narrow", "permute", "permute_function", "reshape",
           "reshape_function", "roll", "slices", "spatial_crop", "split", "transpose"]
