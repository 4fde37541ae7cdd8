"""Test modules that need an optional dependency skip, with a reason naming it, where it is missing (rather than
failing to collect): ``need("torch")`` before importing it."""

import pytest

INSTALL = "pip install -e '.[test]'"


def need(*modules):
    """Skip the calling test module unless every one of ``modules`` imports."""
    for module in modules:
        pytest.importorskip(module, reason=f"needs {module}, from the test extra: {INSTALL}")
