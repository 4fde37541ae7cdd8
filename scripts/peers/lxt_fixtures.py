"""Write tests/data/peers/lxt/: LXT 2.1's relevance (its efficient mode) on transformers, final and per layer, in
float64.

LXT needs torchvision and transformers 4.52.4, which do not load beside this project's CPU torch 2.13.0; run this in
its own venv (``nox -s peers`` does)::

    python3 -m venv /tmp/lxt-venv
    /tmp/lxt-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 lxt==2.1.0 transformers==4.52.4 -e .
    /tmp/lxt-venv/bin/python scripts/peers/lxt_fixtures.py [OUT_DIR]

Models: ``vit``, torchvision's ``VisionTransformer`` in a small configuration (LXT's recipe for it is CP-LRP: the
query and key detached).  For every model the folder gets ``MODEL.reflrp`` (the torch model imported by
:func:`reflrp.from_torch` before LXT patches anything) and ``MODEL.npz``: the input, the explained class, and for
every case the input relevance ``x * x.grad`` and the relevance ``output * output.grad`` at each listed module's
output (``CASE/MODULE``), with the seed of LXT's recipe (``y.backward()`` on the logit: relevance = the logit's
value); plus the library versions.  tests/test_peers_lxt.py explains the same models with ``profile="lxt"``.

LXT patches ``torch.nn.LayerNorm``, ``nn.GELU`` and ``nn.MultiheadAttention`` for the whole process, so each model
is imported into reflrp before the patch.
"""

from __future__ import annotations

import importlib.metadata
import json
import pathlib
import sys

import numpy as np
import torch
from lxt.efficient import monkey_patch
from torchvision.models import vision_transformer

import reflrp

ROOT = pathlib.Path(__file__).resolve().parents[2]


def randomize(model, generator):
    """Weights and biases ~ N(0, 0.3) (class token and position embedding too), LayerNorm weights ~ U(0.5, 1.5):
    large enough that every part of the model matters; eval mode, no gradients for the parameters."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".ln" in f".{name}" and name.endswith("weight"):
                parameter.copy_(0.5 + torch.rand(parameter.shape, generator=generator, dtype=parameter.dtype))
            else:
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def vit():
    """A 2-layer, 2-head ViT on 32x32 images in 8x8 patches, width 32, 5 classes."""
    generator = torch.Generator().manual_seed(21)
    model = vision_transformer.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                 hidden_dim=32, mlp_dim=64, num_classes=5)
    model = randomize(model.double(), generator)
    x = torch.randn(2, 3, 32, 32, generator=generator, dtype=torch.float64)
    modules = ["conv_proj", "encoder.ln", "heads.head"]
    for k in range(2):
        block = f"encoder.layers.encoder_layer_{k}"
        modules += [f"{block}.ln_1", f"{block}.self_attention", f"{block}.ln_2", f"{block}.mlp.0", f"{block}.mlp.1",
                    f"{block}.mlp.3"]
    return model, x, modules


def lxt_relevance(model, x, target, modules):
    """LXT's recipe: relevance = x * x.grad after ``y.backward()`` on the target logit, one sample at a time; the
    relevance at each module's output is ``output * output.grad`` (gradients kept by forward hooks)."""
    outputs = {}

    def keeper(name):
        def hook(module, inputs, output):
            tensor = output[0] if isinstance(output, tuple) else output
            tensor.retain_grad()
            outputs[name] = tensor
        return hook

    handles = [model.get_submodule(name).register_forward_hook(keeper(name)) for name in modules]
    try:
        relevance, per_layer = [], {name: [] for name in modules}
        for k in range(len(x)):
            sample = x[k:k + 1].clone().requires_grad_(True)
            y = model(sample)[0, target]
            y.backward()
            relevance.append((sample * sample.grad)[0].detach().numpy())
            for name in modules:
                tensor = outputs[name]
                per_layer[name].append((tensor * tensor.grad)[0].detach().numpy())
    finally:
        for handle in handles:
            handle.remove()
    return np.stack(relevance), {name: np.stack(v) for name, v in per_layer.items()}


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    model, x, modules = vit()
    target = 3
    reflrp.save(reflrp.from_torch(model, x), out / "vit.reflrp")  # before LXT patches torch.nn
    monkey_patch(vision_transformer)  # LXT's default for torchvision's ViT: CP-LRP
    relevance, per_layer = lxt_relevance(model, x, target, modules)
    arrays = {"x": x.numpy(), "target": np.array(target), "cp-lrp": relevance,
              **{f"cp-lrp/{name}": value for name, value in per_layer.items()}}
    versions = {name: importlib.metadata.version(name) for name in ("lxt", "torch", "torchvision", "transformers")}
    np.savez(out / "vit.npz", versions=json.dumps(versions), modules=json.dumps(modules),
             cases=json.dumps({"cp-lrp": "CP-LRP"}), **arrays)
    print(f"vit: logit sums {[float(model(x[k:k + 1])[0, target]) for k in range(len(x))]}, "
          f"relevance sums {relevance.reshape(len(x), -1).sum(1)}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "data" / "peers" / "lxt")
