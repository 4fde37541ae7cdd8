"""Profiles: how they are named, checked and recorded; what the reflrp profile leaves unchanged."""

import numpy as np
import pytest

import reflrp
from reflrp import composites, rules
from reflrp.compat import Preset, Profile, Zennit, as_profile
from reflrp.conventions import names
from reflrp.errors import ReflrpError


@pytest.fixture
def model(rng):
    return reflrp.Sequential([
        reflrp.Conv2d(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3), padding=1),
        reflrp.BatchNorm2d(rng.normal(size=3), 0.5 + rng.random(3), rng.normal(size=3), rng.normal(size=3)),
        reflrp.ReLU(),
        reflrp.Upsample(scale_factor=2),
        reflrp.Conv2d(rng.normal(size=(2, 3, 3, 3)), rng.normal(size=2), padding=1),
        reflrp.Flatten(),
        reflrp.Linear(rng.normal(size=(4, 2 * 8 * 8)), rng.normal(size=4)),
    ])


def test_profile_names_and_errors():
    assert set(names()) >= {"reflrp", "zennit", "innvestigate", "captum"}
    assert as_profile("zennit") == Zennit() and as_profile("reflrp") == Profile()
    with pytest.raises(ReflrpError, match="profile must be one of reflrp, zennit.*got 'Zennit'"):
        as_profile("Zennit")
    with pytest.raises(ReflrpError, match="got the function Zennit; did you mean Zennit\\(\\)"):
        as_profile(Zennit)
    with pytest.raises(ReflrpError, match="merge_defect=True .* needs merge_batchnorm=True"):
        Zennit(merge_defect=True)
    with pytest.raises(ReflrpError, match="Zennit: merge_batchnorm must be"):
        Zennit(merge_batchnorm="yes")
    assert str(Zennit()) == "zennit" and str(Zennit(merge_batchnorm=True)) == "zennit(merge_batchnorm=True)"


def test_presets_are_checked_when_made(model):
    zennit = Zennit()
    assert zennit.preset("EpsilonGammaBox", low=0.0, high=1.0) == Preset("zennit", "EpsilonGammaBox",
                                                                         (("low", 0.0), ("high", 1.0)))
    with pytest.raises(ReflrpError, match="no preset named 'EpsilonFoo'; the presets are EpsilonAlpha2Beta1"):
        zennit.preset("EpsilonFoo")
    with pytest.raises(ReflrpError, match="preset EpsilonPlus: got an unexpected keyword.*parameters are epsilon"):
        zennit.preset("EpsilonPlus", gamma=0.5)
    with pytest.raises(ReflrpError, match="preset EpsilonGammaBox: missing a required argument: 'low'"):
        zennit.preset("EpsilonGammaBox")
    x = np.ones((1, 2, 4, 4))
    with pytest.raises(ReflrpError, match="zennit EpsilonPlus: epsilon must be"):
        reflrp.explain(model, x, 0, zennit.preset("EpsilonPlus", epsilon=-1.0), profile=zennit)
    with pytest.raises(ReflrpError, match="zero_params must be None or \\['bias'\\]"):
        reflrp.explain(model, x, 0, zennit.preset("EpsilonPlus", zero_params=["weight"]), profile=zennit)
    with pytest.raises(ReflrpError, match="is a preset of profile 'zennit', but the profile is 'reflrp'"):
        reflrp.explain(model, x, 0, zennit.preset("EpsilonPlus"))
    with pytest.raises(ReflrpError, match="rules must be a reflrp rule or composite, got str 'EpsilonPlus'"):
        reflrp.explain(model, x, 0, "EpsilonPlus")


def test_a_preset_by_name_equals_the_named_composite(model, rng):
    x = rng.normal(size=(2, 2, 4, 4))
    by_name = reflrp.explain(model, x, 1, "EpsilonPlus", profile="zennit")
    by_object = reflrp.explain(model, x, 1, composites.EpsilonPlus(), profile="zennit")
    assert np.array_equal(by_name.relevance, by_object.relevance)
    assert by_name.ledger.rules == by_object.ledger.rules


def test_zennit_profile_decisions(model, rng):
    x = rng.normal(size=(2, 2, 4, 4))
    e = reflrp.explain(model, x, 1, composites.EpsilonPlus(), profile="zennit")
    assert np.array_equal(e.seed.sum(axis=1), [1.0, 1.0])  # Zennit's one-hot seed
    assert e.ledger.rules == ("ZPlus", "Pass", "Pass", "Gradient", "ZPlus", "Gradient", "Epsilon")
    assert e.ledger.profile == "zennit" and "profile               zennit" in e.ledger.table()
    assert e.profile == Zennit()
    own = reflrp.explain(model, x, 1, composites.EpsilonPlus())
    assert own.ledger.rules == ("ZPlus", "Epsilon", "Pass", "Norm", "ZPlus", "Gradient", "Epsilon")
    assert own.ledger.profile == "reflrp" and np.array_equal(own.target_value, own.output[:, 1])
    merged = reflrp.explain(model, x, 1, composites.EpsilonPlus(), profile=Zennit(merge_batchnorm=True))
    assert len(merged.ledger.nodes) == len(model.nodes) - 1
    defect = reflrp.explain(model, x, 1, composites.EpsilonPlus(),
                            profile=Zennit(merge_batchnorm=True, merge_defect=True))
    assert defect.ledger.nodes == e.ledger.nodes and defect.ledger.rules[1] == "Pass"
    assert not np.array_equal(defect.relevance, merged.relevance)


def test_zennit_first_layer_is_the_first_matching_module(rng):
    """EpsilonGammaBox's first map names convolutions only: behind a Linear, the first Conv gets ZBox."""
    model = reflrp.Sequential([
        reflrp.Linear(rng.normal(size=(16, 8)), rng.normal(size=16)),
        reflrp.Reshape((1, 4, 4)),
        reflrp.Conv2d(rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2), padding=1),
        reflrp.Conv2d(rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2), padding=1),
    ])
    x = rng.normal(size=(1, 8))
    e = reflrp.explain(model, x, (0, 1, 1), composites.EpsilonGammaBox(-3.0, 3.0), profile="zennit")
    assert e.ledger.rules[0] == "Epsilon" and e.ledger.rules[2].startswith("ZBox") and e.ledger.rules[3] == "Gamma"
    own = reflrp.explain(model, x, (0, 1, 1), composites.EpsilonGammaBox(-3.0, 3.0))
    assert own.ledger.rules[0].startswith("ZBox") and own.ledger.rules[2] == "Gamma"


def test_reflrp_profile_by_name_changes_nothing(model, rng):
    x = rng.normal(size=(2, 2, 4, 4))
    for given in (rules.Epsilon(), composites.EpsilonGammaBox(-3.0, 3.0)):
        a = reflrp.explain(model, x, 1, given)
        b = reflrp.explain(model, x, 1, given, profile=Profile(), seed="value")
        assert np.array_equal(a.relevance, b.relevance) and a.ledger.rules == b.ledger.rules
