"""The benchmark models, as PyTorch modules (so Zennit runs on the very same weights): VGG-16 without BatchNorm, a
4-level U-Net with BatchNorm, the seed U-Net of iNNvestigate issue #118 (``reflrp.models.small_unet``), an MLP; and
the models people explain today, where torchvision and segmentation-models-pytorch import (the peers venv):
ResNet-50, EfficientNet-B0, ConvNeXt-Tiny, and a segmentation-models-pytorch U-Net on a ResNet-34 encoder; and a
3-D U-Net on a 64^3 volume."""

from __future__ import annotations

import torch
from torch import nn

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16(nn.Module):
    """torchvision's VGG-16 layout (no BatchNorm), 3x224x224 in, 1000 classes."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for entry in VGG16_CONFIG:
            if entry == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, entry, 3, padding=1), nn.ReLU()]
                channels = entry
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


#: the layers of a U-Net in 2 or 3 spatial axes
_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.ConvTranspose2d),
           3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.ConvTranspose3d)}


def _block(cin, cout, dims=2):
    conv, norm = _LAYERS[dims][:2]
    return nn.Sequential(conv(cin, cout, 3, padding=1), norm(cout), nn.ReLU(),
                         conv(cout, cout, 3, padding=1), norm(cout), nn.ReLU())


class UNet(nn.Module):
    """A U-Net in ``dims`` (2 or 3) spatial axes: ``levels`` down steps (double 3x3 conv + BN + ReLU, max pool),
    transposed-convolution up steps with concatenation skips, per-pixel (voxel) logits for ``classes`` classes."""

    def __init__(self, channels=3, classes=2, base=32, levels=4, dims=2):
        super().__init__()
        conv, _, pool, up = _LAYERS[dims]
        widths = [base * 2 ** k for k in range(levels + 1)]
        self.down = nn.ModuleList([_block(channels if k == 0 else widths[k - 1], widths[k], dims)
                                   for k in range(levels)])
        self.pools = nn.ModuleList([pool(2) for _ in range(levels)])
        self.bottom = _block(widths[levels - 1], widths[levels], dims)
        self.ups = nn.ModuleList([up(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(levels))])
        self.decode = nn.ModuleList([_block(2 * widths[k], widths[k], dims) for k in reversed(range(levels))])
        self.out = conv(base, classes, 1)

    def forward(self, x):
        skips = []
        for block, pool in zip(self.down, self.pools):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.ups, self.decode, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.out(x)


class SeedUNet(nn.Module):
    """``reflrp.models.small_unet``: bias-free valid 3x3 convolutions with BatchNorm, max pooling, a transposed
    convolution, a cropped concatenation skip; 1x28x28 in, 12x12 logits out."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.conv1, self.conv2 = block(1, 4), block(4, 4)
        self.pool = nn.MaxPool2d(2)
        self.conv3, self.conv4 = block(4, 8), block(8, 8)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.conv5, self.conv6 = block(8, 4), block(4, 4)
        self.out = nn.Conv2d(4, 1, 1)

    def forward(self, x):
        skip = self.conv2(self.conv1(x))
        h = torch.relu(self.up(self.conv4(self.conv3(self.pool(skip)))))
        h = torch.cat([h, skip[:, :, 4:-4, 4:-4]], dim=1)
        return self.out(self.conv6(self.conv5(h)))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                                    nn.Linear(1024, 10))

    def forward(self, x):
        return self.layers(x)


def _torchvision(name):
    def make():
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    return make


def _smp_unet():
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name="resnet34", encoder_weights=None, classes=2)


#: name -> (builder, per-sample input shape, a target index into one sample's output)
MODELS = {
    "vgg16": (VGG16, (3, 224, 224), (1,)),
    "unet128": (UNet, (3, 128, 128), (1, 64, 64)),
    "seed_unet": (SeedUNet, (1, 28, 28), (0, 6, 6)),
    "mlp": (MLP, (784,), (3,)),
    "resnet50": (_torchvision("resnet50"), (3, 224, 224), (1,)),
    "efficientnet_b0": (_torchvision("efficientnet_b0"), (3, 224, 224), (1,)),
    "convnext_tiny": (_torchvision("convnext_tiny"), (3, 224, 224), (1,)),
    "smp_unet_resnet34": (_smp_unet, (3, 256, 256), (1, 128, 128)),
    # a 3-D U-Net as nnU-Net builds them (16 to 128 channels, 3 levels) on a 64^3 volume
    "unet3d_64": (lambda: UNet(channels=1, base=16, levels=3, dims=3), (1, 64, 64, 64), (1, 32, 32, 32)),
}
#: the models that need torchvision or segmentation-models-pytorch
MODERN = ("resnet50", "efficientnet_b0", "convnext_tiny", "smp_unet_resnet34")


def available(name):
    """Whether this venv builds the model ``name`` (the :data:`MODERN` ones need the peers venv)."""
    try:
        MODELS[name][0]()
    except ImportError:
        return False
    return True


def build(name, dtype, seed=0):
    """The model ``name`` in ``dtype`` (torch.float32 or torch.float64) with fixed random weights, eval mode."""
    builder = MODELS[name][0]
    torch.manual_seed(seed)
    model = builder().to(dtype)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.normal_(1, 0.1)
                module.bias.normal_(0, 0.1)
    return model.eval()


def imported(name, dtype, batch=1):
    """The benchmark case ``name`` in ``dtype`` ("float32" or "float64"): ``(module, x, graph, index)``, the PyTorch
    module (:func:`build`), a batch uniform in [0, 1) drawn from seed 1, the module imported into reflrp with
    BatchNorm merged, and the target index into one sample's output."""
    import reflrp
    from reflrp import canonize

    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    module = build(name, torch_dtype)
    shape, index = MODELS[name][1], MODELS[name][2]
    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(1), dtype=torch_dtype)
    return module, x, canonize.merge_batchnorm(reflrp.from_torch(module, x)), index
