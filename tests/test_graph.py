"""Graph models: construction errors, fan-out order, Sequential as a special case, cut conservation."""

import numpy as np
import pytest

import reflrp
from reflrp import models, rules
from reflrp.errors import ReflrpError
from reflrp.graph import Node


def lin(rng, o, i, bias=True):
    return reflrp.Linear(rng.normal(size=(o, i)), rng.normal(size=o) if bias else None)


@pytest.mark.parametrize(
    "nodes,output,message",
    [
        (lambda r: [Node("a", reflrp.ReLU(), ["b"])], None, "ReLU 'a': input 'b' does not exist"),
        (lambda r: [Node("a", reflrp.ReLU(), ["b"]), Node("b", reflrp.ReLU(), ["a"])], None,
         "ReLU 'a': the graph has a cycle: a -> b -> a"),
        (lambda r: [Node("a", reflrp.ReLU(), ["a"])], None, "cycle: a -> a"),
        (lambda r: [Node("a", reflrp.ReLU(), ["b"]), Node("b", reflrp.ReLU())], None,
         "input 'b' is listed after it; list nodes in topological order"),
        (lambda r: [Node("a", reflrp.ReLU()), Node("a", reflrp.ReLU())], None, "two nodes are named 'a'"),
        (lambda r: [Node("input", reflrp.ReLU())], None, "reserved"),
        (lambda r: [Node("a", reflrp.Add())], None, "Add 'a': takes two or more inputs, got 1"),
        (lambda r: [Node("a", reflrp.ReLU(), ["input", "input"])], None, "ReLU 'a': takes 1 input"),
        (lambda r: [Node("a", reflrp.ReLU())], "zzz", "output node 'zzz' does not exist"),
        (lambda r: [], None, "at least one node"),
    ],
)
def test_graph_construction_errors(nodes, output, message, rng):
    with pytest.raises(ReflrpError, match=message):
        reflrp.Graph(nodes(rng), output=output)


def test_node_validation():
    with pytest.raises(ReflrpError, match="layer must be a reflrp layer"):
        Node("a", "relu")
    with pytest.raises(ReflrpError, match="node name must be a non-empty string"):
        Node("", reflrp.ReLU())


@pytest.mark.parametrize(
    "layer,message",
    [
        (reflrp.Concat(), r"Concat 'join': input 1 has shape \(3, 4, 4\), input 0 has \(2, 5, 5\)"),
        (reflrp.Add(), r"Add 'join': input 1 has shape \(3, 4, 4\), input 0 has \(2, 5, 5\)"),
    ],
)
def test_shape_mismatch_at_multi_input_nodes(layer, message, rng):
    b = reflrp.GraphBuilder()
    one = b.add("one", reflrp.Conv2d(rng.normal(size=(2, 1, 1, 1))), b.input)
    two = b.add("two", reflrp.Conv2d(rng.normal(size=(3, 1, 2, 2))), b.input)
    b.add("join", layer, one, two)
    model = b.build()
    with pytest.raises(ReflrpError, match=message):
        reflrp.explain(model, rng.normal(size=(1, 1, 5, 5)), 0, rules.Epsilon())


def three_way_fanout(rng):
    """One node read by three consumers whose relevance is then summed back: addition order matters."""
    b = reflrp.GraphBuilder()
    h = b.add("fc0", lin(rng, 6, 5), b.input)
    branches = [b.add(f"fc{k}", lin(rng, 6, 6), h) for k in (1, 2, 3)]
    s = b.add("sum", reflrp.Add(), *branches)
    b.add("head", lin(rng, 2, 6), s)
    return b.build()


def test_three_way_fanout_is_summed_in_listing_order_bit_identically(rng):
    model = three_way_fanout(rng)
    x = rng.normal(size=(4, 5)) * np.array([1e8, 1, 1e-8, 1, 3])  # wide magnitudes: order changes the bits
    first = reflrp.explain(model, x, 1, rules.Epsilon(), keep=["fc0", "fc1", "fc2", "fc3"])
    for _ in range(3):
        again = reflrp.explain(model, x, 1, rules.Epsilon(), keep=True)
        np.testing.assert_array_equal(again.relevance, first.relevance)
        np.testing.assert_array_equal(again.relevances["fc0"], first.relevances["fc0"])
    # the documented order: contributions of fc1, fc2, fc3 (listing order), added left to right
    parts = []
    for k in (1, 2, 3):
        node = model[f"fc{k}"]
        step = reflrp.explain(model, x, 1, rules.Epsilon(), keep=[node.name])
        a = model.trace(x)["fc0"]
        r_out = step.relevances[node.name]
        parts.append(rules.Epsilon().propagate(node.layer, [a], node.layer.forward([a]), r_out).r_in[0])
    np.testing.assert_array_equal(first.relevances["fc0"], (parts[0] + parts[1]) + parts[2])


def test_sequential_is_a_graph_and_gives_the_same_bits(rng):
    layers = [lin(rng, 6, 4), reflrp.ReLU(), lin(rng, 3, 6)]
    seq = reflrp.Sequential(layers)
    b = reflrp.GraphBuilder()
    for node in seq.nodes:
        b.add(node.name, node.layer)
    graph = b.build()
    x = rng.normal(size=(3, 4))
    np.testing.assert_array_equal(reflrp.explain(seq, x, 2, rules.ZPlus()).relevance,
                                  reflrp.explain(graph, x, 2, rules.ZPlus()).relevance)
    assert [n.name for n in seq.nodes] == ["linear_0", "relu_1", "linear_2"]
    assert isinstance(seq, reflrp.Graph) and seq["relu_1"].inputs == ("linear_0",)


def test_cut_conservation_on_the_unet(rng):
    model = models.small_unet(models.random_unet_parameters(3))
    x = rng.uniform(size=(2, 1, 28, 28))
    e = reflrp.explain(model, x, reflrp.targets.Pixel((0, 5, 7)), rules.Epsilon(), keep=True)
    scale = e.ledger.scale()
    for cut in (["input"], ["relu1"], ["relu2"], ["pool", "crop"], ["concat"], ["relu_up", "crop"], ["relu6"],
                ["up", "crop"]):
        assert np.all(np.abs(e.check_cut(cut)) <= 1e-12 * scale), cut
    with pytest.raises(ReflrpError, match="do not separate the output from the input"):
        e.check_cut(["pool"])
    with pytest.raises(ReflrpError, match="one feeds the other"):
        e.check_cut(["relu1", "relu2"])
    partial = reflrp.explain(model, x, reflrp.targets.Pixel((0, 5, 7)), rules.Epsilon(), keep=["pool"])
    with pytest.raises(ReflrpError, match="its relevance was not kept"):
        partial.check_cut(["pool", "crop"])


def test_graph_algorithms_are_iterative_on_deep_graphs():
    n = 3000
    chain = [reflrp.Node(f"n{k}", reflrp.Identity(), [f"n{k - 1}" if k else "input"]) for k in range(n)]
    with pytest.raises(ReflrpError, match="input 'n2998' is listed after it; list nodes in topological order"):
        reflrp.Graph(chain[::-1])  # listed backwards: no cycle, but out of order
    cyclic = [reflrp.Node("n0", reflrp.Identity(), [f"n{n - 1}"])] + chain[1:]
    with pytest.raises(ReflrpError, match=r"the graph has a cycle: n0 -> n1 -> .* -> n2999 -> n0"):
        reflrp.Graph(cyclic)
    graph = reflrp.Graph(chain)
    assert len(graph.ancestors(f"n{n - 1}")) == n
    e = reflrp.explain(reflrp.Graph(chain + [reflrp.Node("fc", reflrp.Linear(np.ones((1, 2))), [f"n{n - 1}"])]),
                       np.ones((1, 2)), 0, reflrp.rules.Epsilon())
    assert np.all(np.abs(e.ledger.closure(relative=True)) <= 1e-12)
