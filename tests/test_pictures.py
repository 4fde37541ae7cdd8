"""Pictures: the ledger's waterfall (its bars add up to the ledger's identity) and the comparison views, drawn to
PNG and SVG, from the API and the command line."""

import dataclasses
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from extras import need

need("matplotlib")

import reflrp
from reflrp import cli, composites, rules
from reflrp.compat.views import plane, save_comparison
from reflrp.digits import make_digits
from reflrp.errors import ReflrpError
from reflrp.models import DIGITS_UNET_FILE as MODEL_FILE
from reflrp.waterfall import save_waterfall, steps


@pytest.fixture(scope="module")
def explained():
    """The shipped U-Net, BatchNorm kept (its shifts absorb), two pixels of one digit under LRP-epsilon: every
    convolution's bias and stabilizer has an entry."""
    x, _ = make_digits(2, seed=5)
    model = reflrp.load(MODEL_FILE)
    return reflrp.explain(model, x, reflrp.targets.Pixels(0, [(6, 6), (3, 9)]), rules.Epsilon(epsilon=1e-3))


def test_the_bars_walk_from_the_target_to_the_input_as_the_ledger_says(explained):
    ledger = explained.ledger
    for m in range(len(ledger.target_value)):
        bars = steps(ledger, m, top=None)
        assert bars[0] == ("target", "target", 0.0, ledger.target_value[m])
        assert bars[-1] == ("input", "input", 0.0, ledger.input_relevance[m])
        middle = bars[1:-1]
        assert middle and {bar.column for bar in middle} <= {"bias", "stabilizer", "dropped", "gradient"}
        assert middle[0].start == ledger.target_value[m]
        for before, after in zip(middle, middle[1:]):
            assert after.start == before.end  # one running total
        # what the bars absorbed is the ledger's: the end is the input relevance plus the closure
        scale = ledger.scale()[m]
        assert abs(middle[-1].end - (ledger.input_relevance[m] + ledger.closure()[m])) <= 1e-12 * scale
        assert abs(sum(b.start - b.end for b in middle) - ledger.total("absorbed")[m]) <= 1e-12 * scale
        # every non-zero entry of every node has its bar, in the order relevance meets the nodes
        entries = [(k, c) for k in reversed(range(len(ledger.nodes))) for c in ("bias", "stabilizer", "dropped",
                                                                                "gradient")
                   if getattr(ledger, c)[k, m] != 0]
        assert [(b.label, b.column) for b in middle] == [(f"{ledger.nodes[k]} ({ledger.layers[k]})", c)
                                                        for k, c in entries]


def test_top_keeps_the_largest_nodes_and_gathers_the_rest_in_one_bar(explained):
    ledger = explained.ledger
    every = steps(ledger, 1, top=None)
    three = steps(ledger, 1, top=3)
    nodes = {b.label for b in every[1:-1]}
    kept = {b.label for b in three[1:-1] if b.column != "other nodes"}
    assert len(nodes) > 3 and len(kept) == 3
    others = [b for b in three if b.column == "other nodes"]
    assert len(others) == 1 and others[0].label == f"{len(nodes) - 3} other nodes"
    size = {label: sum(abs(b.start - b.end) for b in every[1:-1] if b.label == label) for label in nodes}
    assert min(size[k] for k in kept) >= max(size[k] for k in nodes - kept)
    scale = ledger.scale()[1]
    assert abs(three[-2].end - every[-2].end) <= 1e-12 * scale  # the same walk, fewer bars


def test_waterfalls_draw_to_svg_and_png_the_same_bytes_each_time(explained, tmp_path):
    svg, png = tmp_path / "ledger.svg", tmp_path / "ledger.png"
    save_waterfall(svg, explained.ledger, [0, 1], title="two pixels")
    save_waterfall(png, explained.ledger, [0])
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "explanation 1: target" in text and "closure" in text and "two pixels" in text
    assert png.read_bytes().startswith(b"\x89PNG")
    again = tmp_path / "again.svg"
    save_waterfall(again, explained.ledger, [0, 1], title="two pixels")
    assert again.read_bytes() == svg.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.svg", "ledger.png", "ledger.svg"]  # no leftovers


def test_a_plain_gradient_step_and_a_zero_ledger_draw_too(tmp_path):
    """Relevance injected (a non-conservative gradient step goes up) and an explanation with nothing absorbed."""
    rng = np.random.default_rng(3)
    model = reflrp.Sequential([reflrp.Linear(rng.normal(size=(4, 3)), None), reflrp.Tanh(),
                               reflrp.Linear(rng.normal(size=(2, 4)), None)])
    x = rng.normal(size=(1, 3))
    plain = rules.Epsilon(epsilon=0.0)
    e = reflrp.explain(model, x, (1,), composites.Composite(names={"tanh_1": rules.Gradient()}, affine=plain))
    bars = steps(e.ledger)
    assert [b.column for b in bars[1:-1]] == ["gradient"]
    save_waterfall(tmp_path / "g.svg", e.ledger)
    quiet = reflrp.explain(model, x, (1,), composites.Composite(names={"tanh_1": rules.Pass()}, affine=plain))
    assert [b.column for b in steps(quiet.ledger)] == ["target", "input"]
    save_waterfall(tmp_path / "quiet.png", quiet.ledger)


@pytest.mark.parametrize("call, message", [
    (lambda e, p: steps(e.ledger, 9), "explanation 9 is out of range"),
    (lambda e, p: steps(e.ledger, 0, top=0), "top"),
    (lambda e, p: save_waterfall(p / "ledger.jpg", e.ledger), "must end in .png or .svg"),
    (lambda e, p: save_waterfall(p / "ledger.svg", e.ledger, []), "no explanations"),
    (lambda e, p: save_waterfall(p / "ledger.svg", e.ledger, [9]), "explanation 9 is out of range"),
])
def test_bad_arguments_are_named_and_nothing_is_written(explained, tmp_path, call, message):
    with pytest.raises(ReflrpError, match=message):
        call(explained, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_ledger_command_draws_its_waterfall(tmp_path, capsys):
    x, _ = make_digits(3, seed=1)
    np.save(tmp_path / "x.npy", x)
    picture = tmp_path / "ledger.svg"
    code = cli.main(["ledger", str(MODEL_FILE), str(tmp_path / "x.npy"), "--target", "0,6,6", "--composite",
                     "epsilonplus", "--picture", str(picture)])
    assert code == 0
    assert f"wrote {picture}" in capsys.readouterr().out
    assert "explanation 2: target" in picture.read_text()
    with pytest.raises(SystemExit) as refused:  # refused by the argument parser, before anything runs
        cli.main(["ledger", str(MODEL_FILE), str(tmp_path / "x.npy"), "--target", "0,6,6", "--picture",
                  str(tmp_path / "ledger.pdf")])
    assert refused.value.code == 2
    assert "must end in .png or .svg" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.svg", "x.npy"]


@pytest.fixture(scope="module")
def compared():
    """A departure at the U-Net's transposed convolution: the other side uses z+ there, everything else equal."""
    x, _ = make_digits(2, seed=5)
    model = reflrp.load(MODEL_FILE)
    target = reflrp.targets.Pixels(0, [(6, 6)])
    other = reflrp.explain(model, x, target, composites.Composite(
        layer_map=[(reflrp.ConvTranspose2d, rules.ZPlus())], affine=rules.Epsilon()), keep=True)
    per_layer = reflrp.compare(model, x, target, rules.Epsilon(), dict(other.relevances, input=other.relevance),
                               try_profiles=False)
    final_only = reflrp.compare(model, x, target, rules.Epsilon(), other.relevance, try_profiles=False)
    return per_layer, final_only, other


def test_a_comparison_keeps_both_maps_and_draws_them_with_the_divergence_curve(compared, tmp_path):
    per_layer, final_only, other = compared
    assert per_layer.departure is not None and per_layer.departure.layers == ("up",)
    np.testing.assert_array_equal(per_layer.theirs, other.relevance)
    assert per_layer.mine.shape == other.relevance.shape
    svg = tmp_path / "compare.svg"
    save_comparison(svg, per_layer, explanation=1, title="up by z+")
    text = svg.read_text()
    assert ElementTree.parse(svg).getroot().tag.endswith("svg")
    for words in ("reflrp - other", "departs: up", "tolerance 1e-06", "up by z+", "relative difference"):
        assert words in text
    again = tmp_path / "again.svg"
    save_comparison(again, per_layer, explanation=1, title="up by z+")
    assert again.read_bytes() == svg.read_bytes()
    png = tmp_path / "final.png"
    save_comparison(png, final_only)  # no maps per layer: the three maps only
    assert png.read_bytes().startswith(b"\x89PNG")


def test_maps_of_every_rank_become_planes():
    rng = np.random.default_rng(0)
    assert plane(rng.normal(size=7)).shape == (1, 7)
    image = rng.normal(size=(3, 5, 6))
    np.testing.assert_array_equal(plane(image), image.sum(axis=0))
    volume = np.zeros((2, 4, 3, 3))
    volume[:, 2] = 1.0
    np.testing.assert_array_equal(plane(volume), np.full((3, 3), 2.0))
    with pytest.raises(ReflrpError, match="per-explanation shape"):
        plane(np.zeros((1, 1, 1, 1, 1)))


@pytest.mark.parametrize("call, message", [
    (lambda c, p: save_comparison(p / "c.gif", c), "must end in .png or .svg"),
    (lambda c, p: save_comparison(p / "c.svg", c, explanation=4), "explanation 4 is out of range"),
    (lambda c, p: save_comparison(p / "c.svg", dataclasses.replace(c, mine=None)), "holds no maps"),
])
def test_bad_comparison_pictures_are_named_and_nothing_is_written(compared, tmp_path, call, message):
    with pytest.raises(ReflrpError, match=message):
        call(compared[0], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_compare_command_draws_its_picture(compared, tmp_path, capsys):
    x, _ = make_digits(2, seed=5)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "other.npy", compared[2].relevance)
    picture = tmp_path / "compare.png"
    code = cli.main(["compare", str(MODEL_FILE), str(tmp_path / "x.npy"), str(tmp_path / "other.npy"), "--target",
                     "0,6,6", "--rule", "epsilon", "--picture", str(picture)])
    assert code == 0
    assert f"wrote {picture}" in capsys.readouterr().out
    assert picture.read_bytes().startswith(b"\x89PNG")
