"""Example models built from explicit arrays.

:func:`small_unet` is the small segmentation U-Net of the report that started reflrp: 28x28x1 input, 3x3 valid
bias-free convolutions with 4, 4 / 8, 8 / 4, 4 filters, each optionally followed by BatchNorm, then ReLU; 2x2
max pooling after the second convolution; a 2x2 stride-2 ConvTranspose2d (4 filters, with bias) and ReLU; the
second block's output center-cropped by 4 pixels and concatenated after the transposed convolution; a 1x1 output
convolution with bias; a sigmoid output.  The output map is 12x12 (explained at the logit).
"""

from __future__ import annotations

import pathlib

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.graph import GraphBuilder
from reflrp.layers import BatchNorm2d, Concat, Conv2d, ConvTranspose2d, Crop, MaxPool2d, ReLU, Sigmoid

DIGITS_UNET_FILE = pathlib.Path(__file__).resolve().parent / "data" / "unet_digits.reflrp"
SHAPES_UNET3D_FILE = pathlib.Path(__file__).resolve().parent / "data" / "unet3d_shapes.reflrp"
VIT_DIGITS_FILE = pathlib.Path(__file__).resolve().parent / "data" / "vit_digits.reflrp"
REVIEWS_ENCODER_FILE = pathlib.Path(__file__).resolve().parent / "data" / "reviews_encoder.reflrp"

# (name, in_channels, out_channels) of the six 3x3 convolutions
UNET_CONVS = (("conv1", 1, 4), ("conv2", 4, 4), ("conv3", 4, 8), ("conv4", 8, 8), ("conv5", 8, 4), ("conv6", 4, 4))


def unet_parameter_shapes(batchnorm=True):
    """``{name: shape}`` of every array :func:`small_unet` takes (PyTorch ``state_dict`` names)."""
    shapes = {}
    for name, cin, cout in UNET_CONVS:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3)
        if batchnorm:
            k = name[-1]
            for p in ("running_mean", "running_var", "weight", "bias"):
                shapes[f"bn{k}.{p}"] = (cout,)
    shapes["up.weight"] = (8, 4, 2, 2)
    shapes["up.bias"] = (4,)
    shapes["out.weight"] = (1, 4, 1, 1)
    shapes["out.bias"] = (1,)
    return shapes


def random_unet_parameters(seed=0, batchnorm=True, dtype=np.float64):
    """Random arrays for :func:`small_unet`, for tests and examples.

    Weights are He-scaled normals.  BatchNorm statistics are those of a batch of uniform noise images (as
    training would leave them, slightly perturbed), so activations stay alive through the network; BN weights
    and biases are random, so BN shifts both absorb and inject relevance.
    """
    seed = validate.integer(seed, "random_unet_parameters: seed", minimum=0, maximum=None)
    batchnorm = validate.boolean(batchnorm, "random_unet_parameters: batchnorm")
    dtype = validate.float_dtype(dtype, "random_unet_parameters: dtype")
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape in unet_parameter_shapes(batchnorm).items():
        if key.endswith("running_var"):
            value = np.ones(shape)
        elif key.endswith("running_mean"):
            value = np.zeros(shape)
        elif key.startswith("bn") and key.endswith("weight"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("bias"):
            value = rng.normal(0.1, 0.2, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if not key.startswith("up") else shape[0]
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        params[key] = value
    if batchnorm:
        calibration = rng.uniform(0.0, 1.0, size=(16, 1, 28, 28))
        for name, _, _ in UNET_CONVS:
            z = small_unet(params).trace(calibration, upto=name)[name]
            k = name[-1]
            params[f"bn{k}.running_mean"] = z.mean(axis=(0, 2, 3)) * rng.uniform(0.9, 1.1, z.shape[1])
            params[f"bn{k}.running_var"] = z.var(axis=(0, 2, 3)) * rng.uniform(0.9, 1.1, z.shape[1]) + 1e-3
    return {k: v.astype(dtype) for k, v in params.items()}


def small_unet(parameters, batchnorm=True, sigmoid=True):
    """The small segmentation U-Net as a :class:`~reflrp.Graph`.

    Parameters
    ----------
    parameters : dict of str to ndarray
        Arrays named as :func:`unet_parameter_shapes` lists.
    batchnorm : bool
        Put a BatchNorm2d after every 3x3 convolution.
    sigmoid : bool
        End with a Sigmoid (explanations start at the logit below it).
    """
    if not isinstance(parameters, dict):
        raise ReflrpError(f"small_unet: parameters must be a dict of name to array, got {type(parameters).__name__}")
    batchnorm = validate.boolean(batchnorm, "small_unet: batchnorm")
    sigmoid = validate.boolean(sigmoid, "small_unet: sigmoid")
    expected = unet_parameter_shapes(batchnorm)
    missing = sorted(set(expected) - set(parameters))
    if missing:
        raise ReflrpError(f"small_unet: missing parameters {', '.join(missing)}")
    for key, shape in expected.items():
        if np.shape(parameters[key]) != shape:
            raise ReflrpError(f"small_unet: {key} has shape {np.shape(parameters[key])}, expected {shape}")
    p = parameters
    b = GraphBuilder()

    def block(name, source):
        h = b.add(name, Conv2d(p[f"{name}.weight"]), source)
        if batchnorm:
            k = name[-1]
            bn = BatchNorm2d(p[f"bn{k}.running_mean"], p[f"bn{k}.running_var"], p[f"bn{k}.weight"], p[f"bn{k}.bias"])
            h = b.add(f"bn{k}", bn, h)
        return b.add(f"relu{name[-1]}", ReLU(), h)

    h = block("conv1", b.input)
    skip = block("conv2", h)
    h = b.add("pool", MaxPool2d(2), skip)
    h = block("conv3", h)
    h = block("conv4", h)
    h = b.add("up", ConvTranspose2d(p["up.weight"], p["up.bias"], stride=2), h)
    h = b.add("relu_up", ReLU(), h)
    cropped = b.add("crop", Crop(4), skip)
    h = b.add("concat", Concat(axis=1), h, cropped)
    h = block("conv5", h)
    h = block("conv6", h)
    h = b.add("out", Conv2d(p["out.weight"], p["out.bias"]), h)
    if sigmoid:
        h = b.add("sigmoid", Sigmoid(), h)
    return b.build(output=h)


def digits_unet():
    """The shipped :func:`small_unet` (with BatchNorm) trained to segment the strokes of generated digits
    (:mod:`reflrp.digits`; ``scripts/train_unet.py``).  Its training seed, loss and held-out quality are in the
    file's metadata: ``reflrp.io.read(DIGITS_UNET_FILE)[1]``."""
    from reflrp.io import load

    return load(DIGITS_UNET_FILE)


def shapes_unet3d():
    """The shipped 3-D U-Net (float32) trained to segment the spheres and cubes of :mod:`reflrp.shapes` into
    background, sphere and cube (``scripts/train_unet3d.py``; docs/volumes.md).  Its training seed, loss and
    held-out Dice scores are in the file's metadata: ``reflrp.io.read(SHAPES_UNET3D_FILE)[1]``."""
    from reflrp.io import load

    return load(SHAPES_UNET3D_FILE)


def vit_digits():
    """The shipped vision transformer (float32) that classifies generated digits (:mod:`reflrp.digits`; 4x4 patches,
    a class token, two blocks of ``nn.MultiheadAttention``; ``scripts/train_transformers.py``, docs/transformers.md).
    Seed, loss and held-out accuracy in the file's metadata: ``reflrp.io.read(VIT_DIGITS_FILE)[1]``."""
    from reflrp.io import load

    return load(VIT_DIGITS_FILE)


def reviews_encoder():
    """The shipped text encoder (float32) that reads generated movie reviews (:mod:`reflrp.reviews`) as token ids
    (an :class:`~reflrp.layers.Embedding` first) and says negative (0) or positive (1); docs/transformers.md.
    Seed, loss and held-out accuracy in the file's metadata: ``reflrp.io.read(REVIEWS_ENCODER_FILE)[1]``."""
    from reflrp.io import load

    return load(REVIEWS_ENCODER_FILE)


__all__ = ["DIGITS_UNET_FILE", "REVIEWS_ENCODER_FILE", "SHAPES_UNET3D_FILE", "VIT_DIGITS_FILE", "digits_unet",
           "reviews_encoder", "vit_digits", "random_unet_parameters", "shapes_unet3d",
           "small_unet", "unet_parameter_shapes"]

