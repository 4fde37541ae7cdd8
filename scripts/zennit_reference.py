"""Make tests/data/zennit_gamma.npz: Zennit's Gamma relevance on random networks with signed inputs.

Zennit 0.5.1 imports torchvision, which does not load beside this project's CPU torch 2.13.0; run this script in a
separate venv::

    python3 -m venv /tmp/zennit-venv
    /tmp/zennit-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 zennit==0.5.1
    /tmp/zennit-venv/bin/python scripts/zennit_reference.py

The file holds every network's arrays (PyTorch ``state_dict`` names and layouts), the inputs, the one-hot seeds
and Zennit's input relevance, all float64.  ``tests/test_zennit.py`` rebuilds the same networks in reflrp and
compares.  The architectures here and there must agree; each is small on purpose.
"""

from __future__ import annotations

import importlib.metadata
import pathlib

import numpy as np
import torch
from torch import nn
from zennit.composites import LayerMapComposite
from zennit.rules import Gamma

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "zennit_gamma.npz"


class Signed(nn.Module):
    """Two convolutions back to back (the second sees signed inputs), ReLU, a convolution, a dense head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2)
        self.conv3 = nn.Conv2d(6, 5, 3, padding=1)
        self.fc = nn.Linear(5 * 3 * 3, 3)

    def forward(self, x):
        h = torch.relu(self.conv2(self.conv1(x)))
        return self.fc(torch.flatten(self.conv3(h), 1))


class Skip(nn.Module):
    """A U-Net step: un-rectified convolution and transposed-convolution outputs concatenated, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.skip = nn.Conv2d(4, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        u = self.up(torch.relu(self.down(h)))
        return self.out(torch.cat([self.skip(h), u], dim=1))


def randomize(module, generator):
    for p in module.parameters():
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) / np.sqrt(max(1, p[0].numel())))


def zennit_relevance(model, x, seed, gamma):
    composite = LayerMapComposite([(nn.Conv2d, Gamma(gamma)), (nn.ConvTranspose2d, Gamma(gamma)),
                                   (nn.Linear, Gamma(gamma))])
    x = x.clone().requires_grad_(True)
    with composite.context(model) as modified:
        out = modified(x)
        (relevance,) = torch.autograd.grad(out, x, grad_outputs=seed)
    return relevance.detach().numpy()


def main():
    generator = torch.Generator().manual_seed(20261128)
    arrays = {"zennit_version": np.array(importlib.metadata.version("zennit")),
              "torch_version": np.array(torch.__version__)}
    for name, model, in_shape in (("signed", Signed(), (3, 2, 8, 8)), ("skip", Skip(), (3, 2, 8, 8))):
        model = model.double().eval()
        randomize(model, generator)
        x = torch.rand(in_shape, generator=generator, dtype=torch.float64) * 3 - 1  # inputs in [-1, 2]
        with torch.no_grad():
            out = model(x)
        seed = torch.zeros_like(out)
        if out.ndim == 2:
            seed[:, 1] = 1
        else:
            seed[:, 1, 3, 2] = 1
        for key, value in model.state_dict().items():
            arrays[f"{name}/{key}"] = value.numpy()
        arrays[f"{name}/x"] = x.numpy()
        arrays[f"{name}/seed"] = seed.numpy()
        for gamma in (0.25, 1.0):
            arrays[f"{name}/relevance/gamma={gamma}"] = zennit_relevance(model, x, seed, gamma)
    OUT.parent.mkdir(exist_ok=True)
    np.savez(OUT, **arrays)
    print(f"wrote {OUT}: {', '.join(k for k in arrays if 'relevance' in k)}")


if __name__ == "__main__":
    main()
