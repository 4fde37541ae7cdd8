"""What the property tests share: the rules they sweep and the exact-conservation check."""

import numpy as np

import reflrp
from reflrp import composites, rules

ALL_RULES = [
    rules.Epsilon(),
    rules.Epsilon(epsilon=0.0),
    rules.Epsilon(epsilon=0.1, zero_bias=True),
    rules.ZPlus(),
    rules.AlphaBeta(),
    rules.AlphaBeta(alpha=1.0, beta=0.0, epsilon=0.0),
    rules.Gamma(),
    rules.Gamma(gamma=0.5, epsilon=0.0),
    rules.Flat(),
    rules.WSquare(),
    composites.EpsilonPlus(),
    composites.EpsilonAlpha2Beta1(),
    composites.EpsilonPlusFlat(),
    composites.EpsilonAlpha2Beta1Flat(),
    composites.EpsilonGammaBox(-4.0, 4.0),
    composites.Composite(layer_map=[(reflrp.Conv2d, rules.Gamma()), (reflrp.ConvTranspose2d, rules.Gamma()),
                                    (reflrp.Linear, rules.Epsilon()),
                                    (reflrp.BatchNorm2d, rules.Pass()),
                                    (reflrp.MaxPool2d, rules.WinnerTakesAll("split"))]),
]

# rules that conserve relevance exactly on bias-free networks
CONSERVATIVE = [
    rules.Epsilon(epsilon=0.0),
    rules.AlphaBeta(epsilon=0.0),
    rules.AlphaBeta(alpha=3.0, beta=2.0, epsilon=0.0),
    rules.Gamma(epsilon=0.0),
    rules.Flat(epsilon=0.0),
    rules.WSquare(epsilon=0.0),
]


def unstabilized(rule, first=None):
    """``rule`` on layers with weights and the z-rule without stabilizer (``Norm(epsilon=0)``) on every
    parameter-free linear layer (pooling, Upsample, Add): nothing is absorbed anywhere but at zero denominators."""
    exact_norm = rules.Norm(epsilon=0.0)
    linear = (reflrp.AvgPool2d, reflrp.AdaptiveAvgPool2d, reflrp.Upsample, reflrp.Add)
    return composites.Composite(layer_map=[(linear, exact_norm)], first=first, affine=rule)


def assert_conserved(e):
    """Exact conservation: the input relevance sums to the target, up to units whose denominator vanished."""
    ledger = e.ledger
    assert np.all(ledger.bias == 0) and np.all(ledger.stabilizer == 0) and np.all(ledger.gradient == 0)
    scale = ledger.scale()
    dropped = ledger.dropped.sum(axis=0)
    # exact conservation, with any unit whose denominator vanished accounted for
    assert np.all(np.abs(e.target_value - e.relevance.reshape(len(e.relevance), -1).sum(1) - dropped) <= 1e-10 * scale)
    # and where no denominator vanished, the input relevance alone sums to the target
    clean = np.all(ledger.dropped == 0, axis=0)
    total = e.relevance.reshape(len(e.relevance), -1).sum(1)
    assert np.all(np.abs(e.target_value - total)[clean] <= 1e-10 * scale[clean])
