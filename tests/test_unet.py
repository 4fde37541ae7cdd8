"""The reported case: the small segmentation U-Net (reflrp.models.small_unet), explained exactly."""

import os
import subprocess
import sys

import numpy as np
import pytest

from extras import need

need("torch")

import torch

import reflrp
from reflrp import composites, models, rules, targets
from reflrp.canonize import merge_batchnorm

from nets import zero_bias_model

ALL = [
    rules.Epsilon(),
    rules.Epsilon(epsilon=0.0, zero_bias=True),
    rules.ZPlus(),
    rules.AlphaBeta(),
    rules.Gamma(),
    rules.Flat(),
    rules.WSquare(),
    composites.EpsilonPlus(),
    composites.EpsilonAlpha2Beta1Flat(),
    composites.EpsilonGammaBox(0.0, 1.0),
]


def unet(seed=0, batchnorm=True):
    return models.small_unet(models.random_unet_parameters(seed, batchnorm=batchnorm), batchnorm=batchnorm)


def digits_like(rng, n=2):
    return rng.uniform(0, 1, size=(n, 1, 28, 28))


def test_unet_shapes_and_sigmoid_output(rng):
    model = unet()
    x = digits_like(rng)
    e = reflrp.explain(model, x, targets.Pixel((0, 6, 6)), rules.Epsilon())
    assert e.output.shape == (2, 1, 12, 12) and e.relevance.shape == x.shape
    np.testing.assert_allclose(e.prediction, 1 / (1 + np.exp(-e.output)), rtol=1e-14)
    np.testing.assert_array_equal(e.target_value, e.output[:, 0, 6, 6])


@pytest.mark.parametrize("rule", ALL, ids=str)
@pytest.mark.parametrize("batchnorm", [True, False])
def test_unet_ledger_closes_for_every_rule(rule, batchnorm, rng):
    model = unet(1, batchnorm)
    e = reflrp.explain(model, digits_like(rng), targets.Pixel((0, 4, 9)), rule)
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12
    assert np.abs(e.ledger.node_closure(relative=True)).max() <= 1e-12


def test_unet_batchnorm_shifts_inject_relevance_and_the_ledger_says_where(rng):
    model = unet(2)
    e = reflrp.explain(model, digits_like(rng), targets.Pixel((0, 3, 3)), rules.Epsilon())
    bn_rows = [k for k, layer in enumerate(e.ledger.layers) if layer == "BatchNorm2d"]
    assert (e.ledger.bias[bn_rows] < 0).any()  # some shift injected relevance
    assert (e.ledger.bias[bn_rows] > 0).any()  # and some absorbed it
    assert np.abs(e.ledger.closure(relative=True)).max() <= 1e-12


def test_unet_lrp0_conserves_exactly_with_biases_zeroed(rng):
    model = zero_bias_model(merge_batchnorm(unet(3)))
    x = digits_like(rng, 3)
    e = reflrp.explain(model, x, targets.Pixels(0, [(0, 0), (6, 6), (11, 2)]), rules.Epsilon(epsilon=0.0))
    ledger = e.ledger
    assert np.all(ledger.bias == 0) and np.all(ledger.stabilizer == 0) and np.all(ledger.dropped == 0)
    total = e.relevance.reshape(len(e.relevance), -1).sum(1)
    np.testing.assert_allclose(total, e.target_value, rtol=1e-10, atol=1e-10 * ledger.scale().max())


def receptive_box(r):
    """Input rows (or columns) that can influence output row ``r``, derived by hand from the architecture:
    out <- conv6 (r..r+2 of 14) <- conv5 (r..r+4 of 16) <- [up: r//2..(r+4)//2 of 8 -> conv4 +2 -> conv3 +2 ->
    pool x2 of 24] and [crop: r+4..r+8 of 24] <- conv2 +2 <- conv1 +2."""
    lo = min(2 * (r // 2), r + 4)
    hi = max(2 * ((r + 4) // 2 + 4) + 1, r + 8)
    return lo, hi + 4


@pytest.mark.parametrize("rule", [rules.Epsilon(), rules.ZPlus(), rules.Flat(), composites.EpsilonGammaBox(0.0, 1.0)],
                         ids=str)
def test_unet_relevance_is_exactly_zero_outside_the_receptive_field(rule, rng):
    model = unet(4)
    pixels = [(0, 0), (5, 8), (11, 11), (7, 2)]
    e = reflrp.explain(model, digits_like(rng, 1), targets.Pixels(0, pixels), rule)
    assert np.count_nonzero(e.relevance) > 0
    for k, (r, c) in enumerate(pixels):
        (r0, r1), (c0, c1) = receptive_box(r), receptive_box(c)
        inside = np.zeros((28, 28), bool)
        inside[r0 : r1 + 1, c0 : c1 + 1] = True
        assert np.all(e.relevance[k, 0][~inside] == 0)
        if isinstance(rule, rules.Flat):  # Flat ignores activations: its support spans the whole receptive field
            rows, cols = np.nonzero(e.relevance[k, 0])
            assert (rows.min(), rows.max(), cols.min(), cols.max()) == (r0, r1, c0, c1)


def torch_unet(params, batchnorm=True):
    """The same U-Net in PyTorch, from the same arrays: an independent forward and gradient."""
    t = {k: torch.from_numpy(v) for k, v in params.items()}
    f = torch.nn.functional

    def block(h, name):
        h = f.conv2d(h, t[f"{name}.weight"])
        if batchnorm:
            k = name[-1]
            h = f.batch_norm(h, t[f"bn{k}.running_mean"], t[f"bn{k}.running_var"], t[f"bn{k}.weight"],
                             t[f"bn{k}.bias"], training=False, eps=1e-5)
        return torch.relu(h)

    def forward(x):
        h = block(x, "conv1")
        skip = block(h, "conv2")
        h = block(block(f.max_pool2d(skip, 2), "conv3"), "conv4")
        h = torch.relu(f.conv_transpose2d(h, t["up.weight"], t["up.bias"], stride=2))
        h = torch.cat([h, skip[:, :, 4:-4, 4:-4]], dim=1)
        h = block(block(h, "conv5"), "conv6")
        return f.conv2d(h, t["out.weight"], t["out.bias"])

    return forward


def test_unet_matches_pytorch_and_lrp0_equals_gradient_times_input(rng):
    params = models.random_unet_parameters(5)
    model = models.small_unet(params)
    x = digits_like(rng, 2)  # continuous random input: no ties in max pooling
    tx = torch.from_numpy(x).requires_grad_(True)
    logits = torch_unet(params)(tx)
    np.testing.assert_allclose(model(x), torch.sigmoid(logits).detach().numpy(), rtol=1e-12, atol=1e-14)
    logits[:, 0, 7, 4].sum().backward()
    expected = x * tx.grad.numpy()
    e = reflrp.explain(model, x, targets.Pixel((0, 7, 4)), rules.Epsilon(epsilon=0.0))
    np.testing.assert_allclose(e.relevance, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_many_pixels_in_one_pass_equal_pixels_explained_one_by_one(rng):
    model = unet(6)
    x = digits_like(rng, 2)
    pixels = [(1, 2), (6, 6), (10, 0)]
    rule = composites.EpsilonGammaBox(0.0, 1.0)
    many = reflrp.explain(model, x, targets.Pixels(0, pixels), rule)
    assert many.relevance.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(many.sample, [0, 0, 0, 1, 1, 1])
    for n in range(2):
        for k, (r, c) in enumerate(pixels):
            one = reflrp.explain(model, x[n : n + 1], targets.Pixel((0, r, c)), rule)
            np.testing.assert_array_equal(many.relevance[n * 3 + k], one.relevance[0])


def test_region_targets(rng):
    model = unet(7)
    x = digits_like(rng, 2)
    rule = rules.Epsilon()
    region = np.zeros((12, 12), bool)
    region[3:6, 4:9] = True
    e = reflrp.explain(model, x, targets.Region(0, region), rule)
    np.testing.assert_allclose(e.target_value, e.output[:, 0][:, region].sum(1), rtol=1e-13)
    whole = reflrp.explain(model, x, 0, rule)  # an int on a segmentation map: every pixel of the class
    # on its receptive cone a region's explanation computes the output only where the cone reaches (a masked array)
    cut = reflrp.explain(model, x, targets.Region(0, region), rule, cone=True)
    assert cut.output.mask.any() and not cut.output.mask[:, :, 3:6, 4:9].any()
    np.testing.assert_allclose(whole.target_value, whole.output[:, 0].reshape(2, -1).sum(1), rtol=1e-13)
    fg = reflrp.explain(model, x, targets.ArgmaxRegion(0), rule)
    np.testing.assert_allclose(fg.target_value, np.where(whole.output > 0, whole.output, 0).reshape(2, -1).sum(1),
                               rtol=1e-13)
    # linearity of LRP-epsilon in the seed: the region map is the sum of its pixels' maps
    pixels = reflrp.explain(model, x, targets.Pixels.from_mask(0, region), rule)
    summed = pixels.relevance.reshape(2, region.sum(), 1, 28, 28).sum(1)
    np.testing.assert_allclose(e.relevance, summed, rtol=1e-9, atol=1e-12 * np.abs(summed).max())
    totals = pixels.relevance.reshape(len(pixels.relevance), -1).sum(1)
    live = (totals != 0).reshape(2, -1).sum(1)
    assert live.sum() < totals.size  # this region holds pixels whose evidence dead ReLUs absorb entirely
    with pytest.raises(reflrp.ReflrpError, match="has total relevance 0 and cannot be normalised"):
        pixels.normalized_aggregate()
    normalized = pixels.normalized_aggregate(skip_zero=True)
    assert normalized.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(normalized.reshape(2, -1).sum(1), live, rtol=1e-12)
    flat = reflrp.explain(model, x, targets.Pixels.from_mask(0, region), rules.Flat())  # never zero
    np.testing.assert_allclose(flat.normalized_aggregate().reshape(2, -1).sum(1), [region.sum()] * 2, rtol=1e-12)


@pytest.mark.parametrize(
    "target,message",
    [
        (targets.Pixel((0, 12, 0)), r"target index \(0, 12, 0\) is outside the output \(1, 12, 12\)"),
        (targets.Pixel((1, 0, 0)), "outside the output"),
        (targets.Pixels(0, [(3, 3), (0, 13)]), r"target pixel \(0, 13\) is outside the 12x12 output"),
        (targets.Region(0, np.zeros((12, 12), bool)), "selects no pixel"),
        (targets.Region(0, np.ones((28, 28), bool)), r"target region has shape \(28, 28\)"),
        (targets.ArgmaxRegion(2), "target class 2 is out of range"),
    ],
)
def test_segmentation_targets_outside_the_output_are_refused(target, message, rng):
    with pytest.raises(reflrp.ReflrpError, match=message):
        reflrp.explain(unet(), digits_like(rng), target, rules.Epsilon())


SCRIPT = """
import hashlib, numpy as np, reflrp
from reflrp import composites, models, targets
model = models.small_unet(models.random_unet_parameters(8))
x = np.random.default_rng(9).uniform(size=(3, 1, 28, 28))
e = reflrp.explain(model, x, targets.Pixels(0, [(2, 2), (9, 5)]), composites.EpsilonGammaBox(0.0, 1.0))
print(hashlib.sha256(e.relevance.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_unet_bits_identical_across_processes_threads_and_rebuilt_models():
    def run(**env):
        out = subprocess.run([sys.executable, "-c", SCRIPT], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()

    local = {}
    exec(SCRIPT.replace("print(", "result = ("), local)
    expected = local["result"]
    assert run() == expected
    assert run(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1") == expected
    assert run(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2") == expected
    rebuilt = models.small_unet({k: v.copy() for k, v in models.random_unet_parameters(8).items()})
    x = np.random.default_rng(9).uniform(size=(3, 1, 28, 28))
    again = reflrp.explain(rebuilt, x, targets.Pixels(0, [(2, 2), (9, 5)]), composites.EpsilonGammaBox(0.0, 1.0))
    assert local["e"].relevance.tobytes() == again.relevance.tobytes()
