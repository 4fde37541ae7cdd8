"""The model zoo (``nox -s peers``, in the Zennit venv: torch 2.14.1, torchvision 0.29.1, Zennit 0.5.1,
segmentation-models-pytorch 0.6, MONAI 1.6): every torchvision classification CNN and segmentation model, four
segmentation-models-pytorch architectures on two encoders, MONAI's 3-D UNet and BasicUNet, and torchvision's ViT-B/16
and Swin-T (explained with AttnLRP), and MONAI's SwinUNETR (3-D, from its ONNX export: torch.fx cannot trace it), with
random weights (nothing downloaded), in float64.

Weights are drawn as in the fixtures (scripts/peers/torch_weights.py: N(0, 1/fan_in), BatchNorm statistics away from
the identity), so that no layer is trivial.  For each model, in a subprocess of its own: import with
``reflrp.from_torch`` (a segmentation model's ``"out"``) and its time, how many nodes were functions, the forward's
largest difference from PyTorch's relative to the output's largest magnitude, an EpsilonPlus explanation of one
output and its ledger closure and time; the same model exported to ONNX (the TorchScript exporter, opset 17) and
imported with ``reflrp.from_onnx``, against PyTorch with the floats the file keeps as float32 attributes rounded so
(:func:`_as_exported`); and Zennit's EpsilonPlus against ``profile="zennit"``, with BatchNorm under
Pass, merged by Zennit's canonizer, and (on models of torchvision's ResNet blocks) under Zennit's ResNetCanonizer,
input relevance relative to its largest magnitude.  What fails says why, in
one line.

    .peers/venv-zennit/bin/python scripts/peers/zoo.py OUT.json [--models NAME ...] [--update]

``--update`` measures the models named and keeps the other rows of OUT.json.

tests/data/zoo.json holds the last run; docs/zoo.md's table is made from it (scripts/docs_tables.py), and a test
keeps the two the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_weights import randomize  # noqa: E402

CLASSIFIERS = ["alexnet", "vgg11_bn", "resnet18", "resnext50_32x4d", "wide_resnet50_2", "densenet121", "googlenet",
               "inception_v3", "squeezenet1_0", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small",
               "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "regnet_x_400mf",
               "shufflenet_v2_x0_5", "mnasnet0_5", "convnext_tiny"]
SEGMENTATION = ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]
SMP = [f"smp.{arch}[{encoder}]" for arch in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus")
       for encoder in ("resnet34", "efficientnet-b0")]
MONAI = ["monai.UNet", "monai.BasicUNet"]  # 3-D: one channel in, two classes out, a 32^3 volume
TRANSFORMERS = ["vit_b_16", "swin_t"]  # explained with AttnLRP (Zennit has no rules for attention)
# torch.fx cannot trace these (MONAI's SwinUNETR computes its window shapes with numpy): imported from their ONNX
# export, explained with AttnLRP there; a 64^3 volume (its five halvings need it)
ONNX_ONLY = ["monai.SwinUNETR"]
MODELS = CLASSIFIERS + SEGMENTATION + SMP + MONAI + TRANSFORMERS + ONNX_ONLY


def _line(error):
    text = str(error).strip().replace("\n", " ")
    return f"{type(error).__name__}: {text[:240]}"


def build(name):
    """The model in float64 eval mode, an input, and the output to explain (key, target)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    if name in CLASSIFIERS or name in TRANSFORMERS:
        size = 224 if name == "vit_b_16" else 96  # a ViT's position embedding fixes its image size
        model, shape, key, target = getattr(torchvision.models, name)(weights=None), (1, 3, size, size), None, 1
    elif name in SEGMENTATION:
        model = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None)
        shape, key, target = (1, 3, 128, 128), "out", (1, 64, 64)
    elif name in MONAI:
        from monai.networks import nets

        model = nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32, 64), strides=(2, 2, 2),
                          num_res_units=2) if name == "monai.UNet" else \
            nets.BasicUNet(spatial_dims=3, in_channels=1, out_channels=2, features=(8, 8, 16, 32, 64, 8))
        shape, key, target = (1, 1, 32, 32, 32), None, (1, 16, 16, 16)
    elif name == "monai.SwinUNETR":
        from monai.networks import nets

        model = nets.SwinUNETR(spatial_dims=3, in_channels=1, out_channels=2, feature_size=12)
        shape, key, target = (1, 1, 64, 64, 64), None, (1, 32, 32, 32)
    else:
        import segmentation_models_pytorch as smp

        architecture, encoder = name[len("smp."):].rstrip("]").split("[")
        model = getattr(smp, architecture)(encoder_name=encoder, encoder_weights=None, classes=2)
        shape, key, target = (1, 3, 128, 128), None, (1, 64, 64)
    generator = torch.Generator().manual_seed(20261207)
    model = randomize(model.double(), generator)
    return model, torch.rand(*shape, generator=generator, dtype=torch.float64), key, target


def _relative(mine, theirs):
    import numpy as np

    return float(np.abs(mine - theirs).max() / max(np.abs(theirs).max(), 1e-300))


def one(name):
    import numpy as np
    import torch

    import reflrp

    model, x, key, target = build(name)
    with torch.no_grad():
        expected = model(x)
    expected = (expected[key] if key else expected).numpy()
    row = {"model": name, "output_magnitude": float(np.abs(expected).max())}
    try:
        start = time.perf_counter()
        graph = reflrp.from_torch(model, x, output=key)
        row["import_s"] = time.perf_counter() - start
        row["nodes"] = len(graph.nodes)
        row["functions"] = sum(node.called == "function" for node in graph.nodes)
        row["forward"] = _relative(graph(x.numpy()), expected)
        start = time.perf_counter()
        composite = reflrp.composites.AttnLRP() if name in TRANSFORMERS else reflrp.composites.EpsilonPlus()
        e = reflrp.explain(graph, x.numpy(), target, composite)
        row["explain_s"] = time.perf_counter() - start
        row["closure"] = float(np.abs(e.ledger.closure(relative=True)).max())
    except Exception as error:
        row["torch_error"] = _line(error)
        graph = None
    row.update(_onnx(model, x, expected, target if name in ONNX_ONLY else None))
    if graph is not None and name not in TRANSFORMERS:
        row.update(_zennit(model, graph, x, target))
    return row


def _as_exported(model, x, expected, onnx_model):
    """PyTorch's output with the floats ONNX keeps as attributes rounded as the file holds them (float32: a
    LeakyReLU's slope, a normalisation's eps): what the exported file computes.  MONAI BasicUNet's slope 0.1 is
    0.10000000149 in its file, which moves its output by 3e-9.  Only the modules whose node the file keeps are
    rounded (the exporter's node names carry the module's path): a BatchNorm after a convolution is folded into
    it with its eps in float64."""
    import copy

    import numpy as np
    import torch

    kept = {_module_path(node.name) for node in onnx_model.graph.node if node.op_type in _ROUNDING}
    rounded = copy.deepcopy(model)
    changed = False
    for name, module in rounded.named_modules():
        if name not in kept:
            continue
        for attribute in ("negative_slope", "eps"):
            value = getattr(module, attribute, None)
            if isinstance(value, float) and float(np.float32(value)) != value:
                setattr(module, attribute, float(np.float32(value)))
                changed = True
    if not changed:
        return expected
    with torch.no_grad():
        out = rounded(x)
    return (out["out"] if isinstance(out, dict) else out).numpy()


def _module_path(node_name):
    """The module a TorchScript-exported node belongs to, from its scope: "/layer1/layer1.0/bn1/BatchNormalization"
    is layer1.0.bn1 (a container's child is named with the container's part, "layer1.0"; a ModuleList's child
    has no part of the list's own: "/decoder/seg_blocks.0/block/block.1/InstanceNormalization" is
    decoder.seg_blocks.0.block.1)."""
    path, previous = [], None
    for part in node_name.split("/")[1:-1]:
        child = previous is not None and part.startswith(previous + ".")
        path.append(part[len(previous) + 1:] if child else part)
        previous = part
    return ".".join(path)


#: ONNX operators that keep a module's float (eps, slope) as a float32 attribute
_ROUNDING = {"BatchNormalization", "InstanceNormalization", "GroupNormalization", "LayerNormalization", "LeakyRelu"}


def _onnx(model, x, expected, target=None):
    """The model exported and read back: its forward against PyTorch's; with ``target``, an AttnLRP explanation
    of the graph read from the file too (for models only ONNX imports)."""
    import numpy as np
    import onnx
    import torch

    import reflrp

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17)
        except Exception as error:
            return {"onnx_export_error": _line(error)}
        try:
            graph = reflrp.from_onnx(path)
            exported = _as_exported(model, x, expected, onnx.load(path))
            row = {"onnx_forward": _relative(graph(x.numpy()), exported)}
            if target is not None:
                start = time.perf_counter()
                e = reflrp.explain(graph, x.numpy(), target, reflrp.composites.AttnLRP())
                row.update(onnx_nodes=len(graph.nodes), onnx_explain_s=time.perf_counter() - start,
                           onnx_closure=float(np.abs(e.ledger.closure(relative=True)).max()))
            return row
        except Exception as error:
            row = {"onnx_error": _line(error)}
            if hasattr(error, "findings"):  # what the audit refused, by kind: "Clip: operator not supported"
                row["onnx_refused"] = sorted({f"{f.what}: {f.why}" for f in error.findings})
            return row


def _zennit(model, graph, x, target):
    """Zennit's EpsilonPlus against profile zennit: BatchNorm under Pass (no canonizer), merged by Zennit's
    SequentialMergeBatchNorm (with its eps defect) where that canonizer runs, and, on a model of torchvision's
    ResNet blocks, Zennit's ResNetCanonizer; input relevance, relative.  Where the two differ by more than 1e-12,
    also how far Zennit's own map moves when the input is multiplied by 1 + 2^-52 (``KEY_self``): an explanation
    that amplifies rounding (a gradient through a normalisation along its own output) differs by about that much
    from any other correct implementation."""
    import torch
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer

    import reflrp
    from reflrp.compat import Zennit

    row = {}
    cases = [("zennit", None, Zennit()),
             ("zennit_merged", [SequentialMergeBatchNorm()], Zennit(merge_batchnorm=True, merge_defect=True))]
    if any(isinstance(m, (BasicBlock, Bottleneck)) for m in model.modules()):
        cases.append(("zennit_resnet", [ResNetCanonizer()],
                      Zennit(merge_batchnorm=True, merge_defect=True, residual_sums=True)))
    differ = _merges_differ(model, graph)
    if differ:
        row.update((f"{key}_error", f"Zennit: {differ}") for key, canonizers, _ in cases if canonizers)
    for key, canonizers, profile in cases:
        if f"{key}_error" in row:
            continue
        try:
            e = reflrp.explain(graph, x.numpy(), target, reflrp.composites.EpsilonPlus(), profile=profile)
        except Exception as error:
            row[f"{key}_error"] = f"reflrp: {_line(error)}"
            continue
        try:
            theirs = _zennit_relevance(model, x, target, canonizers)
        except Exception as error:
            row[f"{key}_error"] = f"Zennit: {_line(error)}"
            continue
        row[key] = _relative(e.relevance, theirs)
        if row[key] > 1e-12:  # how far Zennit's own map moves when the input moves by one rounding
            moved = x * (1 + torch.finfo(torch.float64).eps)
            row[f"{key}_self"] = _relative(_zennit_relevance(model, moved, target, canonizers), theirs)
    return row


def _merges_differ(model, graph):
    """Why Zennit's BatchNorm merge and reflrp's fold different BatchNorms of the graph, or None.  Zennit's
    SequentialMergeBatchNorm pairs a BatchNorm with the leaf module registered just before it; reflrp folds a
    BatchNorm into the layer whose output it reads.  They part where a convolution owns a child module (a padding).
    Run on a copy: the canonizer changes the model it is given."""
    import copy

    from zennit.canonizers import SequentialMergeBatchNorm

    from reflrp import canonize

    duplicate = copy.deepcopy(model)
    try:
        instances = SequentialMergeBatchNorm().apply(duplicate)
    except Exception:  # the canonizer fails on this model: the comparison itself says so
        return None
    names = {id(module): name for name, module in duplicate.named_modules()}
    batchnorms = {node.name for node in graph.nodes if type(node.layer).__name__.startswith("BatchNorm")}
    theirs = {names[id(instance.batch_norm)] for instance in instances} & batchnorms
    _, unmerged = canonize.merge_batchnorm(graph, report=True)
    ours = batchnorms - set(unmerged)
    if theirs == ours:
        return None
    return (f"its BatchNorm merge pairs modules by registration order: it merges {len(theirs)} of the "
            f"{len(batchnorms)} BatchNorms, reflrp {len(ours)}")


def _zennit_relevance(model, x, target, canonizers):
    import torch
    from zennit.composites import EpsilonPlus

    inputs = x.clone().requires_grad_(True)
    with EpsilonPlus(canonizers=canonizers).context(model) as modified:
        out = modified(inputs)
        out = out["out"] if isinstance(out, dict) else out
        seed = torch.zeros_like(out)
        seed[(0, *((target,) if isinstance(target, int) else target))] = 1
        (relevance,) = torch.autograd.grad(out, inputs, grad_outputs=seed)
    return relevance.detach().numpy()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2])))
        return
    out = sys.argv[1]
    update = "--update" in sys.argv
    arguments = [a for a in sys.argv if a != "--update"]
    chosen = arguments[arguments.index("--models") + 1:] if "--models" in arguments else MODELS
    rows = []
    for name in chosen:
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        try:
            rows.append(json.loads(lines[-1]))
        except (IndexError, json.JSONDecodeError):
            rows.append({"model": name, "torch_error": f"the run failed: {done.stderr.strip().splitlines()[-1:]}"})
        print(json.dumps(rows[-1]), flush=True)
    from importlib.metadata import version

    versions = {name: version(name) for name in ("torch", "torchvision", "zennit", "segmentation-models-pytorch",
                                                 "monai", "onnx")}
    if update:  # these models measured anew, the others kept, in the zoo's order
        with open(out) as handle:
            kept = {row["model"]: row for row in json.load(handle)["models"]}
        kept.update({row["model"]: row for row in rows})
        rows = [kept[name] for name in MODELS if name in kept]
    with open(out, "w") as handle:
        json.dump({"versions": versions, "models": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
