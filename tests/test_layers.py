"""The layer protocol, for every registered layer type: frozen values derived from one declaration, forward
agrees with output_shape, and every adjoint is the exact transpose of its linear map (dense matrices).

Adding a layer type means adding it to EXAMPLES; test_every_layer_type_has_an_example fails until then."""

import json
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

import reflrp
from reflrp.errors import ReflrpError
from reflrp.layers import LAYER_TYPES


def _examples(rng):
    """name -> (layer, per-sample input shapes), the layers' arrays drawn from ``rng``."""

    def normal(*shape):
        return rng.normal(size=shape)

    return {
        "Linear": (reflrp.Linear(normal(4, 6), normal(4)), [(6,)]),
        "Conv1d": (reflrp.Conv1d(normal(4, 1, 3), normal(4), stride=2, padding=2, dilation=2, groups=2), [(2, 9)]),
        "Conv2d": (reflrp.Conv2d(normal(4, 1, 3, 2), normal(4), stride=(2, 1), padding=1, groups=2), [(2, 5, 6)]),
        "ConvTranspose2d": (reflrp.ConvTranspose2d(normal(2, 3, 2, 3), normal(3), stride=2, padding=(0, 1),
                                                   output_padding=1), [(2, 3, 4)]),
        "Conv3d": (reflrp.Conv3d(normal(4, 1, 2, 3, 2), normal(4), stride=(1, 2, 1), padding=1, groups=2),
                   [(2, 3, 5, 4)]),
        "ConvTranspose1d": (reflrp.ConvTranspose1d(normal(2, 2, 3), normal(4), stride=2, padding=1, output_padding=1,
                                                   groups=2), [(2, 5)]),
        "ConvTranspose3d": (reflrp.ConvTranspose3d(normal(2, 3, 2, 2, 3), normal(3), stride=2, padding=(0, 1, 1),
                                                   output_padding=(1, 0, 1)), [(2, 2, 3, 3)]),
        "BatchNorm3d": (reflrp.BatchNorm3d(normal(2), rng.uniform(0.5, 2, 2), normal(2), normal(2)), [(2, 2, 3, 2)]),
        "BatchNorm1d": (reflrp.BatchNorm1d(normal(3), rng.uniform(0.5, 2, 3), normal(3), normal(3)), [(3, 4)]),
        "BatchNorm2d": (reflrp.BatchNorm2d(normal(2), rng.uniform(0.5, 2, 2)), [(2, 3, 3)]),
        "AvgPool2d": (reflrp.AvgPool2d(3, 2, 1, count_include_pad=False), [(2, 5, 6)]),
        "AdaptiveAvgPool2d": (reflrp.AdaptiveAvgPool2d((2, 3)), [(2, 5, 7)]),
        "MaxPool2d": (reflrp.MaxPool2d(3, 2, 1), [(2, 5, 6)]),
        "AvgPool1d": (reflrp.AvgPool1d(3, 2, 1, ceil_mode=True), [(2, 8)]),
        "AvgPool3d": (reflrp.AvgPool3d((2, 3, 2), (1, 2, 2), (1, 1, 0), count_include_pad=False), [(2, 3, 5, 4)]),
        "AdaptiveAvgPool1d": (reflrp.AdaptiveAvgPool1d(3), [(2, 7)]),
        "AdaptiveAvgPool3d": (reflrp.AdaptiveAvgPool3d((2, 1, 3)), [(2, 3, 4, 5)]),
        "MaxPool1d": (reflrp.MaxPool1d(3, 2, 1), [(2, 9)]),
        "MaxPool3d": (reflrp.MaxPool3d(2, (1, 2, 2), ceil_mode=True), [(2, 3, 5, 4)]),
        "Upsample": (reflrp.Upsample((2, 3), mode="bilinear"), [(2, 3, 2)]),
        "Add": (reflrp.Add(), [(2, 3), (2, 3), (2, 3)]),
        "Mean": (reflrp.Mean((1, 3), keepdim=True), [(3, 2, 4)]),
        "Identity": (reflrp.Identity(), [(3, 2)]),
        "Dropout": (reflrp.Dropout(0.3), [(3, 2)]),
        "Flatten": (reflrp.Flatten(2), [(2, 3, 4)]),
        "Reshape": (reflrp.Reshape((4, -1)), [(2, 3, 2)]),
        "Concat": (reflrp.Concat(axis=2), [(2, 3, 2), (2, 1, 2)]),
        "Expand": (reflrp.Expand((2, 3, 4)), [(2, 1, 4)]),
        "ConstantConcat": (reflrp.ConstantConcat(normal(1, 4), axis=1, position=0), [(3, 4)]),
        "Permute": (reflrp.Permute((0, 3, 1, 2)), [(2, 3, 4)]),
        "Roll": (reflrp.Roll((-1, 5), (1, 3)), [(3, 2, 4)]),
        "Crop": (reflrp.Crop(((1, 0), (0, 2))), [(2, 4, 5)]),
        "ZeroPad2d": (reflrp.ZeroPad2d((1, 0, 2, 1)), [(2, 3, 3)]),
        "Pad": (reflrp.Pad((0, 1, 2, 0, 1, 1), mode="replicate"), [(2, 2, 3, 2)]),
        "ReLU": (reflrp.ReLU(), [(5,)]),
        "LeakyReLU": (reflrp.LeakyReLU(0.2), [(5,)]),
        "PReLU": (reflrp.PReLU(rng.uniform(-0.5, 0.5, 3)), [(3, 4)]),
        "Tanh": (reflrp.Tanh(), [(5,)]),
        "Sigmoid": (reflrp.Sigmoid(), [(5,)]),
        "Softmax": (reflrp.Softmax(3, causal=True), [(2, 3, 4)]),
        "ReLU6": (reflrp.ReLU6(), [(5,)]),
        "Hardsigmoid": (reflrp.Hardsigmoid(), [(5,)]),
        "Hardswish": (reflrp.Hardswish(), [(5,)]),
        "SiLU": (reflrp.SiLU(), [(5,)]),
        "GELU": (reflrp.GELU(), [(5,)]),
        "Mish": (reflrp.Mish(), [(5,)]),
        "Multiply": (reflrp.Multiply(gate=1), [(2, 3, 2), (2, 1, 1)]),
        "Narrow": (reflrp.Narrow(2, 1, 2), [(2, 4, 3)]),
        "Scale": (reflrp.Scale(normal(2, 1, 1), normal(3, 1)), [(2, 3, 3)]),
        "LayerNorm": (reflrp.LayerNorm((3, 2)), [(4, 3, 2)]),
        "GroupNorm": (reflrp.GroupNorm(2), [(4, 3, 2)]),
        "RMSNorm": (reflrp.RMSNorm((3,), eps=1e-5), [(4, 3)]),
        "MatMul": (reflrp.MatMul(gate=0), [(2, 3, 4), (2, 4, 2)]),
        "Embedding": (reflrp.Embedding(normal(7, 3)), [(5,)]),
    }


EXAMPLES = _examples(np.random.default_rng(5))
NAMES = sorted(EXAMPLES)
LINEAR = [n for n in NAMES if EXAMPLES[n][0].role in ("affine", "linear", "routing")]


def inputs_for(rng, name, n=2):
    if name == "Embedding":  # token ids, as floats
        return [rng.integers(0, 7, size=(n, *EXAMPLES[name][1][0])).astype(np.float64)]
    return [rng.normal(size=(n, *shape)) for shape in EXAMPLES[name][1]]


def dense(fn, shapes):
    """The matrix of a linear map of several inputs (one sample): columns are the inputs' entries in order."""
    columns = []
    for k, shape in enumerate(shapes):
        for i in range(int(np.prod(shape))):
            args = [np.zeros((1, *s)) for s in shapes]
            args[k].reshape(-1)[i] = 1.0
            columns.append(fn(args).ravel())
    return np.array(columns).T


def test_every_layer_type_has_an_example():
    assert sorted(LAYER_TYPES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_forward_agrees_with_output_shape(name, rng):
    layer, shapes = EXAMPLES[name]
    out = layer(*inputs_for(rng, name, 3))
    assert out.shape == (3, *layer.output_shape(*shapes))


@pytest.mark.parametrize("name", LINEAR)
def test_adjoint_is_the_exact_transpose_of_the_linear_map(name):
    layer, shapes = EXAMPLES[name]
    m = dense(lambda args: layer.linear(args), shapes)
    out_shape = layer.output_shape(*shapes)
    t = dense(lambda args: np.concatenate([c.ravel() for c in layer.adjoint(args[0], [np.zeros((1, *s)) for s in
                                                                                       shapes])]), [out_shape])
    np.testing.assert_allclose(t, m.T, rtol=0, atol=1e-14)
    if layer.role == "routing":  # each output is one input or zero: moves, copies or drops, never mixes
        assert set(np.unique(m)) <= {0.0, 1.0} and np.all(m.sum(axis=1) <= 1)
        copies = isinstance(layer, reflrp.Expand) or \
            isinstance(layer, reflrp.Pad) and layer.mode == "replicate"  # the edges, several times
        assert copies or np.all(m.sum(axis=0) <= 1)


@pytest.mark.parametrize("name", LINEAR)
def test_adjoint_takes_more_rows_of_s_than_inputs(name, rng):
    # several explanations of one sample: only the inputs' per-sample shapes may be read
    layer, shapes = EXAMPLES[name]
    inputs = inputs_for(rng, name, 2)
    s = rng.normal(size=(6, *layer.output_shape(*shapes)))
    got = layer.adjoint(s, inputs)
    expected = layer.adjoint(s, [np.repeat(a, 3, axis=0) for a in inputs])
    assert [g.tobytes() for g in got] == [e.tobytes() for e in expected]
    assert [g.shape for g in got] == [(6, *shape) for shape in shapes]


@pytest.mark.parametrize("name", [n for n in LINEAR if EXAMPLES[n][0].role == "affine"])
def test_affine_layers_take_a_replacement_weight_in_linear_and_adjoint(name, rng):
    layer, shapes = EXAMPLES[name]
    weight, bias = layer.affine_parameters()
    other = rng.normal(size=weight.shape)
    m = dense(lambda args: layer.linear(args, other), shapes)
    t = dense(lambda args: layer.adjoint(args[0], [np.zeros((1, *shapes[0]))], other)[0],
              [layer.output_shape(*shapes)])
    np.testing.assert_allclose(t, m.T, atol=1e-13)
    a = inputs_for(rng, name)
    expected = layer.linear(a) if bias is None else layer.linear(a) + layer.expand_bias(bias, len(shapes[0]) + 1)
    np.testing.assert_array_equal(layer.forward(a), expected)


def test_max_pooling_adjoint_routes_to_the_first_maximum(rng):
    layer, shapes = EXAMPLES["MaxPool2d"]
    (a,) = inputs_for(rng, "MaxPool2d", 1)
    a[0, 0, :2, :2] = 7.0  # a tie: the first in row-major window order wins
    out = layer.forward([a])
    routing = dense(lambda args: layer.adjoint(args[0], [a])[0], [out.shape[1:]])  # inputs x outputs
    assert set(np.unique(routing)) <= {0.0, 1.0} and np.all(routing.sum(axis=0) == 1)
    np.testing.assert_array_equal(a.ravel() @ routing, out.ravel())  # each output reads its winner
    assert routing[0, 0] == 1 and routing[1, 0] == 0


@pytest.mark.parametrize("name", NAMES)
def test_layers_are_frozen_values(name):
    layer, _ = EXAMPLES[name]
    field = next(iter(layer.parameters()), None) or next(iter(layer.config()), "role")
    with pytest.raises((FrozenInstanceError, AttributeError)):
        setattr(layer, field, None)
    for array in layer.parameters().values():
        assert not array.flags.writeable


@pytest.mark.parametrize("name", NAMES)
def test_config_and_parameters_rebuild_an_equal_layer(name):
    layer, _ = EXAMPLES[name]
    rebuilt = type(layer)(**{k: v.copy() for k, v in layer.parameters().items()}, **json.loads(json.dumps(
        layer.config())))
    assert rebuilt == layer and hash(rebuilt) == hash(layer)
    cast = layer.astype(np.float32)
    assert cast.config() == layer.config() and all(v.dtype == np.float32 for v in cast.parameters().values())
    assert repr(layer).startswith(type(layer).__name__ + "(")


def test_equality_compares_arrays_and_config(rng):
    w = rng.normal(size=(3, 2))
    assert reflrp.Linear(w) == reflrp.Linear(w.copy())
    assert reflrp.Linear(w) != reflrp.Linear(w, np.zeros(3))
    assert reflrp.Linear(w) != reflrp.Linear(w + 1)
    assert reflrp.Linear(w) != reflrp.Linear(w.astype(np.float32))
    assert reflrp.AvgPool2d(2) == reflrp.AvgPool2d((2, 2), stride=2, padding=(0, 0))
    assert reflrp.AvgPool2d(2) != reflrp.MaxPool2d(2)


def test_derived_values_are_computed_not_stored(rng):
    conv = reflrp.Conv2d(rng.normal(size=(2, 1, 4, 3)), padding="same", dilation=(1, 2))
    assert conv.pads == (1, 2, 2, 2)
    bn = reflrp.BatchNorm2d(np.array([1.0]), np.array([3.0]), np.array([2.0]), np.array([0.5]), eps=1.0)
    assert bn.scale.tolist() == [1.0] and bn.shift.tolist() == [-0.5]
    assert set(vars(conv)) == {"weight", "bias", "stride", "dilation", "groups", "padding"}


def test_a_parameter_free_layer_refuses_a_weight():
    with pytest.raises(ReflrpError, match="AvgPool2d has no weight to replace"):
        reflrp.AvgPool2d(2).linear([np.ones((1, 1, 2, 2))], np.ones(1))
