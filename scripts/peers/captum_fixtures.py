"""Write tests/data/peers/captum/: Captum 0.9's LRP relevance on a CNN, an MLP and a U-Net, final and per layer.

Runs beside this project's CPU torch (``nox -s peers`` does)::

    python3 -m venv /tmp/captum-venv
    /tmp/captum-venv/bin/pip install torch==2.13.0 captum==0.9.0 -e .
    /tmp/captum-venv/bin/python scripts/peers/captum_fixtures.py [OUT_DIR]

For every model the folder gets ``MODEL.reflrp`` (the torch model imported by :func:`reflrp.from_torch`) and
``MODEL.npz``: the input, the targets, and for every case (Captum's default rules, or rules set by hand on named
modules, recorded as JSON in ``CASE/rules``) the input relevance and the relevance Captum stores at the output of
every module with a rule (``relevance_output``, times the output as ``LRP.attribute`` scales the input's), keyed
``CASE/MODULE``; float64; plus the library versions.  tests/test_peers_captum.py explains the same models with
``profile="captum"`` and compares.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LRP
from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES
from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule, GammaRule, IdentityRule
from torch import nn

import reflrp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from torch_weights import randomize  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.pool2 = nn.AdaptiveAvgPool2d(2)
        self.fc1, self.relu3, self.fc2 = nn.Linear(32, 10), nn.ReLU(), nn.Linear(10, 4)

    def forward(self, x):
        h = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        h = self.pool2(self.relu2(self.bn2(self.conv2(h))))
        return self.fc2(self.relu3(self.fc1(torch.flatten(h, 1))))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.relu1 = nn.Linear(6, 8), nn.ReLU()
        self.fc2, self.relu2 = nn.Linear(8, 8), nn.ReLU()
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


class UNet(nn.Module):
    """A transposed-convolution U-Net step with a concatenation skip and a functional max pool (Captum needs a
    rule set by hand on the ConvTranspose2d; with an ``nn.MaxPool2d`` on the skip tensor it would hit its
    concatenation defect)."""

    def __init__(self):
        super().__init__()
        self.enc, self.relu1 = nn.Conv2d(2, 6, 3, padding=1), nn.ReLU()
        self.mid, self.relu2 = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU()
        self.up = nn.ConvTranspose2d(8, 6, 2, stride=2)
        self.out = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        h = self.relu1(self.enc(x))
        u = self.up(self.relu2(self.mid(F.max_pool2d(h, 2))))
        return self.out(torch.cat([h, u], dim=1))


#: Captum's rules and how the fixtures record them: (name, parameters)
RULES = {"EpsilonRule": EpsilonRule, "GammaRule": GammaRule, "Alpha1_Beta0_Rule": Alpha1_Beta0_Rule,
         "IdentityRule": IdentityRule}

CASES = {
    "cnn": {
        "default": {},
        "gamma": {"conv1": ("GammaRule", {}), "conv2": ("GammaRule", {})},
        "mixed": {"conv1": ("Alpha1_Beta0_Rule", {}), "conv2": ("GammaRule", {"set_bias_to_zero": True}),
                  "bn1": ("IdentityRule", {}), "bn2": ("IdentityRule", {}), "fc1": ("EpsilonRule", {"epsilon": 0.25}),
                  "fc2": ("EpsilonRule", {"epsilon": 0.25})},
    },
    "mlp": {
        "default": {},
        "gamma_a1b0": {"fc1": ("GammaRule", {"gamma": 0.5}), "fc2": ("Alpha1_Beta0_Rule", {})},
        "epsilon": {"fc1": ("EpsilonRule", {"epsilon": 0.1}), "fc2": ("EpsilonRule", {"epsilon": 0.1}),
                    "fc3": ("EpsilonRule", {"epsilon": 0.1})},
    },
    "unet": {
        "default": {"up": ("EpsilonRule", {})},
        # not on enc: Captum's second pass computes functional operations (F.max_pool2d after enc) on activations
        # made with the modified weights, which reflrp does not reproduce (docs/profiles.md)
        "gamma": {"mid": ("GammaRule", {}), "up": ("GammaRule", {}), "out": ("EpsilonRule", {"epsilon": 0.1})},
    },
}


def captum_relevance(model, x, target, rules):
    """Captum's input relevance and, per module with a rule, its stored output relevance times the output."""
    attached = {}
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        if name in rules:
            kind, params = rules[name]
            module.rule = RULES[kind](**params)
        elif type(module) in SUPPORTED_LAYERS_WITH_RULES:
            module.rule = SUPPORTED_LAYERS_WITH_RULES[type(module)]()  # what Captum would make, kept to read
        if getattr(module, "rule", None) is not None:
            attached[name] = module.rule
    relevance = LRP(model).attribute(x, target=target)
    with torch.no_grad():
        out = model(x)[(torch.arange(len(x)), *target)] if isinstance(target, tuple) else \
            model(x)[torch.arange(len(x)), target]
    scale = out.reshape(-1, *[1] * 3)
    layers = {}
    for name, rule in attached.items():
        stored = rule.relevance_output[x.device]
        layers[name] = (stored * scale.reshape(-1, *[1] * (stored.dim() - 1))).detach().numpy()
    return relevance.detach().numpy(), layers


def main(out):
    torch.set_default_dtype(torch.float64)
    generator = torch.Generator().manual_seed(20261129)
    models = {"cnn": (CNN(), (2, 3, 8, 8), [1, 3]), "mlp": (MLP(), (2, 6), [0, 2]),
              "unet": (UNet(), (1, 2, 8, 8), (1, 5, 3))}
    out.mkdir(parents=True, exist_ok=True)
    versions = {"captum": importlib.metadata.version("captum"), "torch": torch.__version__}
    for name, (model, shape, target) in models.items():
        model = randomize(model, generator)
        x = torch.randn(shape, generator=generator)
        reflrp.save(reflrp.from_torch(model, x), out / f"{name}.reflrp", metadata={"made_by": versions})
        arrays = {"x": x.numpy(), "target": np.array(target), "versions": np.array(json.dumps(versions))}
        for case, rules in CASES[name].items():
            relevance, layers = captum_relevance(model, x, target, rules)
            arrays[f"{case}/rules"] = np.array(json.dumps(rules))
            arrays[f"{case}/input"] = relevance
            arrays.update({f"{case}/{k}": v for k, v in layers.items()})
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"{name}: {len(arrays)} arrays, {(out / f'{name}.npz').stat().st_size} bytes")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "peers" / "captum")
