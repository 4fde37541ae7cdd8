"""Bit-identical relevance across repeated calls, fresh processes, numba and BLAS thread counts, batch
composition, and models rebuilt from the same arrays.  Whole arrays are compared, never sums."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from extras import need

need("threadpoolctl")

from threadpoolctl import threadpool_limits

import reflrp
import reflrp.digits
import reflrp.models
from reflrp import composites, rules

SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    import reflrp
    from reflrp import composites
    rng = np.random.default_rng(7)
    layers = [
        reflrp.Conv2d(rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8), padding=1),
        reflrp.BatchNorm2d(rng.normal(size=8), rng.uniform(0.5, 2, 8), rng.normal(size=8), rng.normal(size=8)),
        reflrp.ReLU(), reflrp.MaxPool2d(2),
        reflrp.Conv2d(rng.normal(size=(16, 4, 3, 3)) / 5, rng.normal(size=16), stride=2, padding=1, groups=2),
        reflrp.ReLU(), reflrp.AdaptiveAvgPool2d(1), reflrp.Flatten(),
        reflrp.Linear(rng.normal(size=(10, 16)), rng.normal(size=10)),
    ]
    model = reflrp.Sequential(layers)
    x = rng.uniform(-1, 1, size=(6, 3, 24, 24))
    digest = hashlib.sha256()
    for composite in (composites.EpsilonGammaBox(-1.0, 1.0), composites.EpsilonAlpha2Beta1Flat()):
        e = reflrp.explain(model, x, target=np.arange(6) % 10, rules=composite)
        digest.update(e.relevance.tobytes())
    print(digest.hexdigest())
    """
)


def run_script(**env):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def in_process():
    namespace = {}
    stdout = []
    exec(SCRIPT.replace("print(digest.hexdigest())", "out.append(digest.hexdigest())"), {"out": stdout, **namespace})
    return stdout[0]


@pytest.mark.slow
def test_fresh_processes_and_thread_counts_give_the_same_bits():
    expected = in_process()
    assert run_script() == expected
    assert run_script(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1") == expected
    assert run_script(NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2") == expected
    assert run_script(NUMBA_NUM_THREADS="2", NUMBA_THREADING_LAYER="omp") == expected


def _model(rng):
    return reflrp.Sequential([
        reflrp.Conv2d(rng.normal(size=(16, 4, 3, 3)), rng.normal(size=16), padding=1),
        reflrp.ReLU(),
        reflrp.Conv2d(rng.normal(size=(32, 16, 3, 3)) / 10, None, padding=1),
        reflrp.ReLU(), reflrp.Flatten(),
        reflrp.Linear(rng.normal(size=(5, 32 * 16 * 16)) / 50, rng.normal(size=5)),
    ])


def test_blas_thread_count_does_not_change_bits(rng):
    model = _model(rng)
    x = rng.normal(size=(4, 4, 16, 16))
    with threadpool_limits(limits=1, user_api="blas"):
        one = reflrp.explain(model, x, 0, composites.EpsilonPlus()).relevance
    with threadpool_limits(limits=2, user_api="blas"):
        two = reflrp.explain(model, x, 0, composites.EpsilonPlus()).relevance
    np.testing.assert_array_equal(one, two)


def test_batch_composition_does_not_change_bits(rng):
    model = _model(rng)
    x = rng.normal(size=(5, 4, 16, 16))
    rule = rules.Gamma()
    batch = reflrp.explain(model, x, 1, rule).relevance
    mixed = reflrp.explain(model, np.concatenate([rng.normal(size=(3, 4, 16, 16)), x[2:3]]), 1, rule).relevance
    np.testing.assert_array_equal(mixed[3], batch[2])
    alone = reflrp.explain(model, x[4:5], 1, rule).relevance
    np.testing.assert_array_equal(alone[0], batch[4])


def test_rebuilt_models_and_repeated_calls_give_the_same_bits(rng):
    model = _model(rng)
    rebuilt = reflrp.Sequential([type(n.layer)(**{k: v.copy() for k, v in n.layer.parameters().items()},
                                                **n.layer.config()) for n in model.nodes])
    x = rng.normal(size=(2, 4, 16, 16))
    first = reflrp.explain(model, x, 3, composites.EpsilonAlpha2Beta1()).relevance
    for _ in range(3):
        np.testing.assert_array_equal(reflrp.explain(model, x, 3, composites.EpsilonAlpha2Beta1()).relevance, first)
    np.testing.assert_array_equal(reflrp.explain(rebuilt, x, 3, composites.EpsilonAlpha2Beta1()).relevance, first)
    assert np.all(np.isfinite(first)) and np.count_nonzero(first) > first.size // 2  # real maps were compared


def test_ledger_totals_and_closure_do_not_depend_on_the_batch(rng):
    model = _model(rng)
    x = rng.normal(size=(7, 4, 16, 16))
    batch = reflrp.explain(model, x, 2, composites.EpsilonGammaBox(-3.0, 3.0)).ledger
    for k in (0, 3, 6):
        alone = reflrp.explain(model, x[k:k + 1], 2, composites.EpsilonGammaBox(-3.0, 3.0)).ledger
        assert alone.closure()[0].tobytes() == batch.closure()[k].tobytes()
        for column in ("absorbed", "bias", "stabilizer", "dropped", "gradient"):
            assert alone.total(column)[0].tobytes() == batch.total(column)[k].tobytes()


@pytest.mark.parametrize("rules_, profile", [
    (rules.Epsilon(), "reflrp"),
    (composites.EpsilonPlus(layer_map=[(reflrp.MaxPool2d, rules.WinnerTakesAll("split"))]), "reflrp"),
    (composites.EpsilonGammaBox(0.0, 1.0), "reflrp"),
    (composites.EpsilonAlpha2Beta1Flat(), "reflrp"),
    (rules.WSquare(), "reflrp"),
    ("lrp.alpha_2_beta_1", "innvestigate"),
    ("EpsilonPlusFlat", "zennit"),
    (rules.Gamma(), "captum"),
])
def test_many_targets_of_one_sample_give_the_bits_of_single_explanations(rules_, profile):
    # Pixels shares each sample's forward work among its explanations; every map must still be the single one
    model = reflrp.load(reflrp.models.DIGITS_UNET_FILE)
    x, _ = reflrp.digits.make_digits(2, seed=3)
    pixels = [(3, 3), (6, 5), (0, 9)]
    many = reflrp.explain(model, x, reflrp.targets.Pixels(0, pixels), rules_, profile=profile)
    assert many.relevance.shape[0] == 6
    for m, (n, pixel) in enumerate((n, p) for n in range(2) for p in pixels):
        one = reflrp.explain(model, x[n:n + 1], reflrp.targets.Index((0, *pixel)), rules_, profile=profile)
        assert one.relevance[0].tobytes() == many.relevance[m].tobytes()
        for column in ("relevance_in", "bias", "stabilizer", "dropped", "gradient"):
            assert getattr(one.ledger, column)[:, 0].tobytes() == getattr(many.ledger, column)[:, m].tobytes()


@pytest.mark.parametrize("rules_", [composites.EpsilonPlus(), composites.EpsilonGammaBox(0.0, 1.0)])
def test_layers_run_in_slabs_keep_the_bits_of_single_explanations(rules_, rng):
    # a 32-channel 96x96 convolution unfolds in slabs (10.6 MB column matrices in float32); one pixel's relevance
    # leaves most of its adjoint's slabs empty (skipped); the head is a 1x1 convolution (not unfolded)
    model = reflrp.Sequential([
        reflrp.Conv2d(rng.normal(size=(32, 3, 3, 3)) / 3, rng.normal(size=32) / 10, padding=1), reflrp.ReLU(),
        reflrp.Conv2d(rng.normal(size=(32, 32, 3, 3)) / 10, rng.normal(size=32) / 10, padding=1), reflrp.ReLU(),
        reflrp.Conv2d(rng.normal(size=(2, 32, 1, 1)) / 5, None),
    ]).astype(np.float32)
    x = rng.uniform(size=(2, 3, 96, 96)).astype(np.float32)
    pixels = [(5, 7), (48, 50), (90, 3)]
    many = reflrp.explain(model, x, reflrp.targets.Pixels(1, pixels), rules_)
    for m, (n, pixel) in enumerate((n, p) for n in range(2) for p in pixels):
        one = reflrp.explain(model, x[n:n + 1], reflrp.targets.Index((1, *pixel)), rules_)
        assert one.relevance[0].tobytes() == many.relevance[m].tobytes()
        assert np.count_nonzero(one.relevance) > 0
