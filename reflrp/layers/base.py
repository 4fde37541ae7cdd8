"""The layer protocol: frozen values that declare their fields once, and answer ``forward`` and ``adjoint``.

A layer class lists its fields as dataclass fields: parameter arrays with :func:`array`, configuration with
:func:`config` (a check from :mod:`reflrp.validate` and a default).  From that one declaration follow
construction checks, :meth:`Layer.config`, :meth:`Layer.parameters`, :meth:`Layer.astype`, equality, ``repr``
and the model-file format.  Layers are frozen: assigning an attribute raises, and parameter arrays are
read-only copies.

Every layer answers

* ``output_shape(*shapes)``: per-sample output shape for per-sample input shapes (raises on a mismatch);
* ``forward(inputs)``: the output for a list of input batches.

Layers whose output is linear in their inputs (plus a bias) also answer

* ``linear(inputs, weight=None)``: the bias-free linear part, with ``weight`` replacing the layer's own weight;
* ``adjoint(s, inputs, weight=None)``: its exact transpose applied to ``s``, one array per input;

layers with weights (:class:`AffineLayer`) ``affine_parameters()``, ``expand_bias(bias, ndim)`` and
``linear_many(inputs, weights)`` (several weights on one input; a convolution unfolds it once), BatchNorm also
``fused(weight, bias, variance)``; routing layers ``lost(s)`` (what their adjoint drops); max pooling
``adjoint_split_ties``.

Rules and the explain loop never test classes: they read the capability attributes of :class:`Layer`
(``role``, ``normalizes``, ...).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import ClassVar

import numpy as np

from reflrp import boxes, validate
from reflrp.errors import ReflrpError

#: What a layer is to relevance propagation (``Layer.role``):
#: ``"affine"``: ``z = W a + b`` with parameters a rule may modify (``affine_parameters``, ``linear``, ``adjoint``);
#: ``"linear"``: a parameter-free linear map (pooling, upsampling, sums) with an exact ``adjoint``;
#: ``"routing"``: a linear map that only moves, copies or drops values (its adjoint routes exactly; ``lost``);
#: ``"selection"``: max pooling: linear once the winners are known (``adjoint`` to the winners);
#: ``"activation"``: an elementwise nonlinearity;
#: ``"product"``: a product of two inputs (a gate times a signal, the matrix product of two activations);
#: ``"normalization"``: a normalisation by statistics of the input itself (LayerNorm), relevance passing through;
#: ``"softmax"``: a softmax inside a model (attention);
#: ``"embedding"``: a lookup of token ids (relevance reaches each token as the sum over its vector).
ROLES = ("affine", "linear", "routing", "selection", "activation", "product", "normalization", "softmax", "embedding")

#: Concrete layer types by class name: what model files may contain.  Filled by :class:`Layer` subclasses.
LAYER_TYPES: dict = {}


def array(*, ndim, optional=False):
    """Declare a parameter array field with ``ndim`` dimensions (None: any; ``optional``: may be ``None``)."""
    return field(default=None if optional else MISSING, metadata={"array": ndim, "optional": optional})


def config(check, default=MISSING, *, kw_only=False):
    """Declare a configuration field: ``check(value, label)`` validates and returns the canonical value
    (:func:`reflrp.validate.field`)."""
    return validate.field(check, default, kw_only=kw_only)


def optional(check):
    """A config check that also accepts ``None``."""

    def check_or_none(value, label):
        return None if value is None else check(value, label)

    return check_or_none


@dataclass(frozen=True, eq=False, repr=False)
class Layer:
    """Base class of every layer.  Subclasses are ``@dataclass(frozen=True, eq=False, repr=False)`` classes
    declaring their fields with :func:`array` and :func:`config`.

    Capability attributes (class-level, read by rules, composites and :func:`reflrp.explain`):

    Attributes
    ----------
    role : str
        One of :data:`ROLES`.
    n_inputs : int or None
        Number of inputs; ``None`` means two or more.
    output_activation : bool
        At the end of a model, explanations start below this layer (Sigmoid, Softmax, Tanh).
    combines_features : bool
        Mixes input features with learned weights (Linear, Conv2d, ConvTranspose2d): what composites call a
        "first layer" when no such layer lies between it and the input.
    normalizes : bool
        A normalization whose own parameters are not its affine map (BatchNorm): it answers ``fused(weight,
        bias, variance)``, the map for given parameters, which rules use when they modify the layer's own
        weight rather than its map (``batchnorm="module"``, docs/rules.md).
    pointwise : bool
        The output at a position reads each input at that position alone (broadcasting as numpy): activations,
        BatchNorm, Add, Multiply, Identity.  Such a layer answers :meth:`window` by itself.
    """

    role: ClassVar[str] = ""
    n_inputs: ClassVar[int | None] = 1
    output_activation: ClassVar[bool] = False
    combines_features: ClassVar[bool] = False
    normalizes: ClassVar[bool] = False
    pointwise: ClassVar[bool] = False

    def __init_subclass__(cls, abstract=False, **kwargs):
        super().__init_subclass__(**kwargs)
        if not abstract:
            LAYER_TYPES[cls.__name__] = cls

    def __post_init__(self):
        name = type(self).__name__
        dtype = None
        for f in fields(self):  # arrays: one dtype, the first array's
            value = getattr(self, f.name)
            if "array" in f.metadata and (value is not None or not f.metadata["optional"]):
                value = validate.parameter_array(value, f"{name}: {f.name}", f.metadata["array"], dtype)
                dtype = value.dtype
                object.__setattr__(self, f.name, value)
        validate.check_fields(self)
        self._validate()

    def _validate(self):
        """Checks across fields (raise :class:`ReflrpError` naming the layer type)."""

    # -- derived from the declaration ---------------------------------------------------------------------------

    def config(self) -> dict:
        """Non-array fields: the constructor's configuration arguments (JSON-able after tuples become lists)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if "array" not in f.metadata}

    def parameters(self) -> dict:
        """Array fields that are set, by name."""
        arrays = ((f.name, getattr(self, f.name)) for f in fields(self) if "array" in f.metadata)
        return {name: value for name, value in arrays if value is not None}

    @property
    def dtype(self):
        """dtype of the parameters, or ``None`` for a parameter-free layer."""
        arrays = list(self.parameters().values())
        return arrays[0].dtype if arrays else None

    def astype(self, dtype):
        """The same layer with its parameter arrays cast to ``dtype`` (float32 or float64)."""
        dtype = validate.float_dtype(dtype, f"{type(self).__name__}.astype: dtype")
        with np.errstate(over="ignore"):
            return replace(self, **{k: v.astype(dtype) for k, v in self.parameters().items()})

    def reconfigured(self, **changes):
        """The same layer with other configuration values (checked as the constructor checks them); its arrays
        are shared, not copied again (they are read-only): what :meth:`window` cuts layers with."""
        arrays = {f.name for f in fields(self) if "array" in f.metadata}
        if arrays & changes.keys():
            raise ReflrpError(f"reconfigured: {sorted(arrays & changes.keys())} are arrays, not configuration")
        layer = object.__new__(type(self))
        for f in fields(self):
            object.__setattr__(layer, f.name, changes.pop(f.name) if f.name in changes else getattr(self, f.name))
        if changes:
            raise ReflrpError(f"reconfigured: {type(self).__name__} has no field {sorted(changes)[0]!r}")
        validate.check_fields(layer)
        layer._validate()
        return layer

    def __eq__(self, other):
        if type(other) is not type(self) or self.config() != other.config():
            return NotImplemented if not isinstance(other, Layer) else False
        mine, theirs = self.parameters(), other.parameters()
        return mine.keys() == theirs.keys() and all(
            mine[k].dtype == theirs[k].dtype and np.array_equal(mine[k], theirs[k]) for k in mine
        )

    def __reduce__(self):
        """Pickling goes through the constructor, so an unpickled layer is checked and its arrays read-only."""
        return (_rebuild, (type(self), self.parameters(), self.config()))

    def __hash__(self):
        config = tuple((k, v) for k, v in self.config().items())
        return hash((type(self).__name__, config, tuple((k, v.shape) for k, v in self.parameters().items())))

    def __repr__(self):
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if "array" not in f.metadata:
                parts.append(f"{f.name}={value!r}")
            elif value is not None:
                parts.append(f"{f.name}={value.dtype}{list(value.shape)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- the protocol -----------------------------------------------------------------------------------------

    def output_shape(self, *shapes):
        """Per-sample output shape for per-sample input shapes; raises :class:`ReflrpError` on a mismatch."""
        raise NotImplementedError

    def forward(self, inputs):
        """The output for ``inputs``, a list of batches (one per input)."""
        raise NotImplementedError

    def window(self, box, in_shapes):
        """Cut the layer for the receptive cone (:mod:`reflrp.cone`): the outputs in ``box`` (one sample's
        ``((lo, hi) per axis)``, the channel axis whole; :mod:`reflrp.boxes`) read the part ``in_boxes[k]`` of
        input ``k`` (per-sample shape ``in_shapes[k]``) and nothing else.  Returns ``(in_boxes, layer)``, ``layer``
        computing exactly those outputs from exactly those parts, with the same arithmetic as this layer (its
        forward pass and its adjoint, restricted); or ``(in_boxes, layer, grown)`` when the layer computes a
        larger box ``grown`` holding ``box`` (zero padding asked for padding alone reads an input row); or None
        when the layer cannot be cut (it then reads its inputs whole, and its output is computed whole)."""
        if not self.pointwise:
            return None
        in_boxes = boxes.pointwise(box, in_shapes, self.output_shape(*in_shapes))
        return None if in_boxes is None else (in_boxes, self)

    def check_input_count(self, count):
        """Raise unless the layer takes ``count`` inputs."""
        expected = self.n_inputs
        if expected is None and count < 2:
            raise ReflrpError(f"takes two or more inputs, got {count}")
        if expected is not None and count != expected:
            raise ReflrpError(f"takes {expected} input(s), got {count}")

    def __call__(self, *inputs):
        """``forward`` on batches given as arguments, after checking them (arrays, one dtype, finite values, one
        batch size, count, shapes and the memory the output needs); an output that overflows is an error."""
        name = type(self).__name__
        for k, a in enumerate(inputs):
            validate.batch(a, f"{name}: input {k}" if len(inputs) > 1 else f"{name}: input")
            if self.dtype is not None and a.dtype != self.dtype:
                raise ReflrpError(f"{name}: parameters are {self.dtype} but the input is {a.dtype}")
            if a.dtype != inputs[0].dtype:
                raise ReflrpError(f"{name}: input 0 is {inputs[0].dtype} but input {k} is {a.dtype}; use one dtype")
            if len(a) != len(inputs[0]):
                raise ReflrpError(f"{name}: input {k} holds {len(a)} samples, input 0 holds {len(inputs[0])}")
        try:
            self.check_input_count(len(inputs))
            shape = self.output_shape(*(a.shape[1:] for a in inputs))
        except ReflrpError as error:
            raise ReflrpError(f"{name}: {error}") from None
        validate.check_memory(len(inputs[0]) * math.prod(shape) * inputs[0].itemsize, f"{name}: the output")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self.forward([np.ascontiguousarray(a) for a in inputs])
        if not np.all(np.isfinite(out)):
            raise ReflrpError(f"{name}: the output overflowed (values beyond the range of {out.dtype})")
        return out


@dataclass(frozen=True, eq=False, repr=False)
class LinearMap(Layer, abstract=True):
    """A layer whose output is linear in its inputs, plus a bias for affine layers."""

    def linear(self, inputs, weight=None):
        """The bias-free linear map, with ``weight`` (shaped like :meth:`affine_parameters`'s) replacing the
        layer's own weight; parameter-free layers take no weight."""
        raise NotImplementedError

    def adjoint(self, s, inputs, weight=None):
        """The exact transpose of :meth:`linear` (with the same ``weight``) applied to ``s``: a list with one
        array per input, with ``s``'s rows and that input's per-sample shape.  ``inputs`` are the forward inputs:
        only their per-sample shapes are read, and ``s`` may hold more rows than they do (several explanations
        of one sample).  Selection layers (max pooling) read the inputs' values: there one input row per row of
        ``s``."""
        raise NotImplementedError

    def _no_weight(self, weight):
        if weight is not None:
            raise ReflrpError(f"{type(self).__name__} has no weight to replace")


@dataclass(frozen=True, eq=False, repr=False)
class AffineLayer(LinearMap, abstract=True):
    """``z = linear(a, W) + b``: Linear, Conv2d, ConvTranspose2d, BatchNorm.  Rules take ``(W, b)`` from
    :meth:`affine_parameters`, modify them, and pass the modified ``W`` to :meth:`linear` and :meth:`adjoint`
    and the modified ``b`` to :meth:`expand_bias`."""

    role: ClassVar[str] = "affine"

    def affine_parameters(self):
        """``(W, b)``: the array :meth:`linear` takes as ``weight``, and the bias (``None`` when there is none)."""
        raise NotImplementedError

    def expand_bias(self, bias, ndim):
        """``bias`` reshaped to broadcast against an output of ``ndim`` dimensions (channels on axis 1)."""
        return bias.reshape((1, -1) + (1,) * (ndim - 2))

    def linear_many(self, inputs, weights):
        """``[linear(inputs, w) for w in weights]``, bit for bit; a layer may share work between the products
        (Conv2d unfolds its input once)."""
        return [self.linear(inputs, weight) for weight in weights]

    def forward(self, inputs):
        weight, bias = self.affine_parameters()
        z = self.linear(inputs, weight)
        if bias is not None:
            z = z + self.expand_bias(bias, z.ndim)
        return z


@dataclass(frozen=True, eq=False, repr=False)
class LinearOperator(LinearMap, abstract=True):
    """A parameter-free linear map (pooling, upsampling, sums): ``forward`` is ``linear``."""

    role: ClassVar[str] = "linear"

    def forward(self, inputs):
        return self.linear(inputs)


@dataclass(frozen=True, eq=False, repr=False)
class Routing(LinearOperator, abstract=True):
    """A linear map that only moves, copies or drops values: its matrix holds only zeros and ones, each output one
    input or zero, so its adjoint routes relevance exactly (the zeros' relevance is :meth:`lost`)."""

    role: ClassVar[str] = "routing"

    def lost(self, s):
        """The part of ``s`` that the adjoint has nowhere to send (positions the layer created), or ``None``."""
        return None


@dataclass(frozen=True, eq=False, repr=False)
class Activation(Layer, abstract=True):
    """An elementwise (for Softmax, per-sample) nonlinearity; relevance passes through it unchanged."""

    role: ClassVar[str] = "activation"
    pointwise: ClassVar[bool] = True

    def output_shape(self, shape):
        return tuple(shape)

    def derivative(self, a):
        """``f'(a)`` elementwise, as PyTorch's backward computes it (for :class:`~reflrp.rules.Gradient`, which
        reproduces libraries that back-propagate a function's plain gradient)."""
        raise ReflrpError(f"{type(self).__name__} has no elementwise derivative")


def _rebuild(cls, parameters, config):
    return cls(**parameters, **config)


def spatial(shape):
    """Refuse per-sample shapes other than (C, H, W)."""
    if len(shape) != 3:
        raise ReflrpError(f"input must be (N, C, H, W), got per-sample shape {tuple(shape)}")


__all__ = ["LAYER_TYPES", "ROLES", "Activation", "AffineLayer", "Layer", "LinearMap", "LinearOperator", "Routing",
           "array", "config", "optional", "spatial"]
