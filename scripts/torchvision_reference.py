"""Make tests/data/torchvision_graphs.json: the reflrp graphs that torchvision's VGG-16, ResNet-18 and ResNet-50
import to, and torchvision's forward outputs under fixed weights.

torchvision does not load beside this project's CPU torch 2.13.0, so CI cannot import it; tests/test_import_torch.py
writes the same architectures by hand and checks that they import to exactly these graphs (node names, layer types,
configuration, wiring, parameter shapes), and that torchvision's outputs are reproduced.  Run in a separate venv::

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 -e .
    /tmp/tv/bin/python scripts/torchvision_reference.py
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

import numpy as np
import torch
import torchvision

from reflrp.importers import from_torch

TESTS = pathlib.Path(__file__).resolve().parent.parent / "tests"
OUT = TESTS / "data" / "torchvision_graphs.json"
sys.path.insert(0, str(TESTS))
from torch_nets import fixed_weights  # noqa: E402  (the weights the twins in the tests get too)


def describe(graph):
    """A graph as JSON: per node its name, layer type, configuration, inputs and parameter shapes."""
    return [
        {"name": n.name, "layer": type(n.layer).__name__, "inputs": list(n.inputs),
         "config": json.loads(json.dumps(n.layer.config())),
         "parameters": {k: list(v.shape) for k, v in n.layer.parameters().items()}}
        for n in graph.nodes
    ]


def main():
    result = {"torch": torch.__version__, "torchvision": importlib.metadata.version("torchvision"), "models": {}}
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size=(1, 3, 64, 64)))
    for name in ("vgg16", "resnet18", "resnet50"):
        model = fixed_weights(getattr(torchvision.models, name)(weights=None).double().eval())
        with torch.no_grad():
            output = model(x).numpy()
        result["models"][name] = {"graph": describe(from_torch(model, x)), "output": output[0].tolist()}
    OUT.write_text(json.dumps(result))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
