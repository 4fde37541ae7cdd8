"""The model zoo (docs/zoo.md) as last measured by scripts/peers/zoo.py against torchvision, Zennit and
segmentation-models-pytorch (``nox -s peers``): every model the project promises imports, reproduces PyTorch,
closes its ledger and, wherever Zennit runs, equals it; tests/test_docs.py keeps the table equal to this file."""

import json
import os
import pathlib

import pytest

# nox -s peers points this at the zoo it has just measured
PEERS = os.environ.get("REFLRP_PEERS_DATA")
ZOO = json.loads((pathlib.Path(PEERS) / "zoo.json" if PEERS else
                  pathlib.Path(__file__).resolve().parent / "data" / "zoo.json").read_text())
ROWS = {row["model"]: row for row in ZOO["models"]}
PROMISED = ["alexnet", "vgg11_bn", "resnet18", "resnext50_32x4d", "wide_resnet50_2", "densenet121", "googlenet",
            "inception_v3", "squeezenet1_0", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small",
            "mobilenet_v3_large", "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "regnet_x_400mf",
            "shufflenet_v2_x0_5", "mnasnet0_5", "convnext_tiny", "fcn_resnet50", "deeplabv3_resnet50",
            "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"] + [
    f"smp.{arch}[{encoder}]" for arch in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus")
    for encoder in ("resnet34", "efficientnet-b0")] + ["monai.UNet", "monai.BasicUNet"]
TRANSFORMERS = ["vit_b_16", "swin_t"]  # explained with AttnLRP; Zennit has no rules for attention
ONNX_ONLY = ["monai.SwinUNETR"]  # torch.fx cannot trace it: imported from its ONNX export, explained with AttnLRP


def test_every_promised_model_was_measured_with_the_peers_versions():
    assert sorted(ROWS) == sorted(PROMISED + TRANSFORMERS + ONNX_ONLY)
    assert ZOO["versions"]["zennit"] == "0.5.1" and ZOO["versions"]["torchvision"] == "0.29.1"


@pytest.mark.parametrize("name", PROMISED + TRANSFORMERS)
def test_the_model_imports_reproduces_pytorch_and_closes_its_ledger(name):
    row = ROWS[name]
    assert "torch_error" not in row, row["torch_error"]
    assert row["output_magnitude"] > 1e-3  # random weights that leave the output non-trivial
    # ViT-B/16's twelve layers of nn.MultiheadAttention run PyTorch's fused attention kernel in eval mode: float64
    # rounding of another summation order, 4e-12 of the output
    assert row["forward"] <= (1e-11 if name in TRANSFORMERS else 1e-12) and row["closure"] <= 1e-12
    if "onnx_forward" in row:
        # Swin's file (the TorchScript exporter) keeps the attention's scale head_dim ** -0.5 as a float32 constant:
        # 1.7e-8 apart at its first block, 6e-9 at the output; ViT-B/16: PyTorch's fused kernel, as above
        assert row["onnx_forward"] <= {"swin_t": 1e-8, "vit_b_16": 1e-11}.get(name, 1e-12)


@pytest.mark.parametrize("name", ONNX_ONLY)
def test_models_torch_fx_cannot_trace_import_from_onnx_and_close_their_ledger(name):
    row = ROWS[name]
    assert "torch.fx cannot trace" in row["torch_error"]
    # the TorchScript exporter keeps the attention's scale and the normalisations' eps as float32
    assert row["onnx_forward"] <= 1e-8 and row["onnx_closure"] <= 1e-12


RESNETS = ["resnet18", "resnext50_32x4d", "wide_resnet50_2", "fcn_resnet50", "deeplabv3_resnet50"] + [
    f"smp.{arch}[resnet34]" for arch in ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus")]


@pytest.mark.parametrize("name", PROMISED)
def test_profile_zennit_equals_zennit_wherever_zennit_runs(name):
    row = ROWS[name]
    canonizers = ("zennit", "zennit_merged") + (("zennit_resnet",) if name in RESNETS else ())
    assert name in RESNETS or "zennit_resnet" not in row  # Zennit's ResNetCanonizer: torchvision's ResNet blocks
    for key in canonizers:
        if key in row:  # or, where the map amplifies rounding, within what Zennit's own map moves by
            assert row[key] <= max(1e-10, 4 * row.get(f"{key}_self", 0.0)), (key, row[key])
        else:  # only Zennit failing, or a layer Zennit passes by its full gradient (a normalisation's Jacobian)
            error = row[f"{key}_error"]
            assert error.startswith("Zennit: ") or "Zennit 0.5.1 has no default rule for" in error or \
                "by its gradient, which reflrp does not compute" in error, error
