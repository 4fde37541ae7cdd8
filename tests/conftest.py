import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# "dev": quick; "ci": more examples, derandomized so a CI failure reproduces; "long": a bug hunt.
# Chosen by HYPOTHESIS_PROFILE.
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261128)
