"""Write tests/data/peers/zennit/: Zennit 0.5.1's relevance on CNNs, U-Nets, a block of what newer CNNs call as
functions, normalisations (which Zennit back-propagates as their gradient), a small ResNet of torchvision's own
blocks, a 1-D signal CNN and a 3-D U-Net, final and per layer.

Zennit imports torchvision, which does not load beside this project's CPU torch 2.13.0; run this in its own venv
(``nox -s peers`` does)::

    python3 -m venv /tmp/zennit-venv
    /tmp/zennit-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 zennit==0.5.1 -e .
    /tmp/zennit-venv/bin/python scripts/peers/zennit_fixtures.py [OUT_DIR]

For every model the folder gets ``MODEL.reflrp`` (the torch model imported by :func:`reflrp.from_torch`) and
``MODEL.npz``: the input, the explained output index, and for every case (a Zennit composite, with and without
Zennit's BatchNorm merge; on the ResNet also with Zennit's ResNetCanonizer, ``CASE+resnet``) the input relevance
and the relevance arriving at each module's output, keyed ``CASE/MODULE`` (on the ResNet, per module under its
canonizer only), all float64; plus the library versions.  tests/test_peers_zennit.py explains the same models with
``profile="zennit"`` and compares.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.convnext import LayerNorm2d
from torchvision.models.resnet import BasicBlock, Bottleneck
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import (
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
)
from zennit.torchvision import ResNetCanonizer

import reflrp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from torch_weights import randomize  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOW, HIGH = -1.0, 2.0  # the inputs' range, and EpsilonGammaBox's bounds


class CNN(nn.Module):
    """Convolutions with BatchNorm, max and adaptive average pooling, a dense head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        return self.head(self.features(x))


def block(cin, cout, batchnorm):
    layers = [nn.Conv2d(cin, cout, 3, padding=1)]
    layers += [nn.BatchNorm2d(cout)] if batchnorm else []
    return nn.Sequential(*layers, nn.ReLU())


class UNet(nn.Module):
    """Two levels, a concatenation skip at each; up by ConvTranspose2d or by Upsample + convolution; per-pixel
    logits."""

    def __init__(self, up="transposed", batchnorm=True):
        super().__init__()
        self.enc1, self.enc2 = block(2, 6, batchnorm), block(6, 8, batchnorm)
        self.pool1, self.pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.bottom = block(8, 10, batchnorm)
        if up == "transposed":
            self.up2, self.up1 = nn.ConvTranspose2d(10, 8, 2, stride=2), nn.ConvTranspose2d(8, 6, 2, stride=2)
        else:
            self.up2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(10, 8, 3, padding=1))
            self.up1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 6, 3, padding=1))
        self.dec2, self.dec1 = block(16, 8, batchnorm), block(12, 6, batchnorm)
        self.out = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottom(self.pool2(e2))
        d2 = self.dec2(torch.cat([e2, self.up2(b)], dim=1))
        d1 = self.dec1(torch.cat([e1, self.up1(d2)], dim=1))
        return self.out(d1)


class Modern(nn.Module):
    """What torchvision's newer CNNs call as functions, which Zennit back-propagates as their gradient: F.relu,
    F.avg_pool2d, x.mean, F.gelu, F.adaptive_avg_pool2d, a squeeze-and-excitation gate (x * torch.sigmoid(...)), a
    layer scale (parameter * x) and a residual add; and Hardswish and SiLU modules (Pass in Zennit)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.act2 = nn.Conv2d(8, 8, 3, padding=1), nn.Hardswish()
        self.reduce, self.expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.conv3, self.act3 = nn.Conv2d(8, 8, 1), nn.SiLU()
        self.scale = nn.Parameter(torch.ones(8, 1, 1))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        g = self.act2(self.conv2(h))
        g = g * torch.sigmoid(self.expand(F.relu(self.reduce(g.mean((2, 3), keepdim=True)))))
        h = h + self.scale * self.act3(self.conv3(g))
        return self.fc(F.adaptive_avg_pool2d(F.gelu(h), 1).flatten(1))


class Norms(nn.Module):
    """GroupNorm and LayerNorm as modules, and torchvision's LayerNorm2d (F.layer_norm between permutes), each
    with its affine part: Zennit has no rule for them and back-propagates them as their gradient."""

    def __init__(self):
        super().__init__()
        self.conv1, self.gn = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8)
        self.conv2, self.ln2d = nn.Conv2d(8, 8, 3, padding=1), LayerNorm2d(8)
        self.ln, self.fc = nn.LayerNorm(8), nn.Linear(8, 5)

    def forward(self, x):
        h = self.ln2d(self.conv2(F.relu(self.gn(self.conv1(x)))))
        return self.fc(self.ln(F.adaptive_avg_pool2d(F.gelu(h), 1).flatten(1)))


class Signal(nn.Module):
    """A 1-D CNN: Conv1d with BatchNorm1d, max and average pooling, adaptive average pooling, a dense head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv1d(2, 6, 5, padding=2), nn.BatchNorm1d(6), nn.ReLU()
        self.pool1 = nn.MaxPool1d(2)
        self.conv2, self.relu2 = nn.Conv1d(6, 8, 3, stride=2, padding=1), nn.ReLU()
        self.pool2, self.gap = nn.AvgPool1d(3, 1, 1), nn.AdaptiveAvgPool1d(1)
        self.flat, self.fc = nn.Flatten(), nn.Linear(8, 4)

    def forward(self, x):
        h = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        return self.fc(self.flat(self.gap(self.pool2(self.relu2(self.conv2(h))))))


class Volume(nn.Module):
    """A 3-D U-Net: Conv3d with BatchNorm3d, max pooling down, a transposed convolution up, a concatenation skip."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU()
        self.pool = nn.MaxPool3d(2)
        self.conv2, self.bn2, self.relu2 = nn.Conv3d(4, 6, 3, padding=1), nn.BatchNorm3d(6), nn.ReLU()
        self.up = nn.ConvTranspose3d(6, 4, 2, stride=2)
        self.conv3, self.relu3 = nn.Conv3d(8, 4, 3, padding=1), nn.ReLU()
        self.avg, self.out = nn.AvgPool3d(3, 1, 1), nn.Conv3d(4, 2, 1)

    def forward(self, x):
        skip = self.relu1(self.bn1(self.conv1(x)))
        h = self.up(self.relu2(self.bn2(self.conv2(self.pool(skip)))))
        return self.out(self.avg(self.relu3(self.conv3(torch.cat([skip, h], dim=1)))))


class ResNet(nn.Module):
    """torchvision's BasicBlock and Bottleneck, with and without a downsampling shortcut, at small widths."""

    def __init__(self):
        super().__init__()

        def shortcut(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2, downsample=shortcut(8, 16)))
        self.layer2 = nn.Sequential(Bottleneck(16, 4), Bottleneck(16, 8, stride=2, downsample=shortcut(16, 32)))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(32, 5)

    def forward(self, x):
        h = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(self.avgpool(h), 1))


def composites(x):
    low, high = torch.full_like(x, LOW), torch.full_like(x, HIGH)
    return {
        "EpsilonPlus": lambda canonizers: EpsilonPlus(canonizers=canonizers),
        "EpsilonAlpha2Beta1": lambda canonizers: EpsilonAlpha2Beta1(canonizers=canonizers),
        "EpsilonPlusFlat": lambda canonizers: EpsilonPlusFlat(canonizers=canonizers),
        "EpsilonAlpha2Beta1Flat": lambda canonizers: EpsilonAlpha2Beta1Flat(canonizers=canonizers),
        "EpsilonGammaBox": lambda canonizers: EpsilonGammaBox(low=low, high=high, canonizers=canonizers),
    }


def relevances(model, composite, x, grad_output):
    """Zennit's input relevance and the relevance arriving at every module's output (by module name)."""
    kept, handles = {}, []
    x = x.clone().requires_grad_(True)
    with composite.context(model) as modified:
        # registered after Zennit's own hooks, so each sees the output Zennit's hook returned
        for name, module in modified.named_modules():
            if name and not list(module.children()):  # the modules reflrp's import makes nodes of
                handles.append(module.register_forward_hook(_keeper(kept, name)))
        try:
            out = modified(x)
            (relevance,) = torch.autograd.grad(out, x, grad_outputs=grad_output)
        finally:
            for handle in handles:
                handle.remove()
    return relevance.detach().numpy(), {k: v.detach().numpy() for k, v in kept.items()}


def _keeper(kept, name):
    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: kept.__setitem__(name, grad))
    return hook


def main(out):
    torch.set_default_dtype(torch.float64)
    generator = torch.Generator().manual_seed(20261129)
    models = {
        "cnn": (CNN(), (2, 3, 16, 16), (1,)),
        "unet_transposed": (UNet("transposed"), (1, 2, 16, 16), (1, 5, 9)),
        "unet_upsample": (UNet("upsample"), (1, 2, 16, 16), (0, 10, 4)),
        "unet_nobn": (UNet("transposed", batchnorm=False), (1, 2, 16, 16), (2, 7, 7)),
        "modern": (Modern(), (2, 3, 16, 16), (3,)),
        "resnet": (ResNet(), (2, 3, 12, 12), (2,)),
        "norms": (Norms(), (2, 3, 10, 10), (4,)),
        "signal": (Signal(), (2, 2, 32), (1,)),
        "volume": (Volume(), (2, 1, 4, 6, 6), (1, 2, 3, 2)),
    }
    out.mkdir(parents=True, exist_ok=True)
    versions = {"zennit": importlib.metadata.version("zennit"), "torch": torch.__version__}
    for name, (model, shape, index) in models.items():
        model = randomize(model, generator)
        x = LOW + (HIGH - LOW) * torch.rand(shape, generator=generator, dtype=torch.float64)
        reflrp.save(reflrp.from_torch(model, x), out / f"{name}.reflrp", metadata={"made_by": versions})
        with torch.no_grad():
            grad_output = torch.zeros_like(model(x))
        grad_output[(slice(None), *index)] = 1.0
        arrays = {"x": x.numpy(), "index": np.array(index), "versions": np.array(json.dumps(versions))}
        canonized = {"": None, "+merge": [SequentialMergeBatchNorm()]}
        if isinstance(model, ResNet):
            canonized["+resnet"] = [ResNetCanonizer()]
        for case, make in composites(x).items():
            for suffix, canonizers in canonized.items():
                label = case + suffix
                relevance, kept = relevances(model, make(canonizers), x, grad_output)
                arrays[f"{label}/input"] = relevance
                if suffix == "+resnet" or not isinstance(model, ResNet):  # the ResNet: per layer where it is new
                    arrays.update({f"{label}/{k}": v for k, v in kept.items()})
        np.savez_compressed(out / f"{name}.npz", **arrays)
        print(f"{name}: {len(arrays)} arrays, {(out / f'{name}.npz').stat().st_size} bytes")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "peers" / "zennit")
