"""Random weights for the PyTorch fixture models of scripts/peers/ (shared by the Zennit and Captum scripts)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def randomize(model, generator):
    """Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01); BatchNorm statistics and affine parameters away from the
    identity (LayerNorm's, GroupNorm's and InstanceNorm's affine parameters too); PReLU slopes ~ U(0, 0.5); any other
    parameter (a layer scale) ~ U(0.5, 1.5);
    the model in eval mode."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / np.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                n = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator, dtype=torch.float64))
                module.weight.copy_(1 + 0.3 * torch.randn(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(0.5 * torch.rand(module.weight.shape, generator=generator, dtype=torch.float64))
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)) and \
                    module.weight is not None:
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
        for name, parameter in model.named_parameters(recurse=True):
            if not _owned_by_a_layer(model, name):  # e.g. a layer scale
                parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype))
    return model.eval()


def _owned_by_a_layer(model, name):
    """The parameter belongs to a module :func:`randomize` sets (a weight, bias or normalisation parameter)."""
    owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    return isinstance(owner, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
                              nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
                              nn.modules.instancenorm._InstanceNorm, nn.PReLU))
