"""Layers: frozen parameter holders with PyTorch names, argument names and layouts, by family.

* :mod:`~reflrp.layers.affine`: ``Linear``, ``BatchNorm1d``, ``BatchNorm2d``, ``BatchNorm3d``, ``Scale``;
* :mod:`~reflrp.layers.convolution`: ``Conv1d``, ``Conv2d``, ``Conv3d``, ``ConvTranspose1d``, ``ConvTranspose2d``,
  ``ConvTranspose3d``;
* :mod:`~reflrp.layers.pooling`: ``AvgPool1d/2d/3d``, ``AdaptiveAvgPool1d/2d/3d``, ``MaxPool1d/2d/3d``;
* :mod:`~reflrp.layers.linear`: ``Upsample``, ``Add``, ``Mean``;
* :mod:`~reflrp.layers.product`: ``Multiply``, ``MatMul``;
* :mod:`~reflrp.layers.embedding`: ``Embedding``;
* :mod:`~reflrp.layers.normalization`: ``LayerNorm``, ``GroupNorm``, ``RMSNorm``;
* :mod:`~reflrp.layers.routing`: ``Identity``, ``Dropout``, ``Flatten``, ``Reshape``, ``Concat``,
  ``ConstantConcat``, ``Expand``, ``Crop``, ``Narrow``, ``ZeroPad2d``, ``Pad``;
* :mod:`~reflrp.layers.reorder`: ``Permute``, ``Roll``;
* :mod:`~reflrp.layers.activations`: ``ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``Hardsigmoid``, ``Hardswish``,
  ``SiLU``, ``GELU``, ``Mish``, ``Tanh``, ``Sigmoid``, ``Softmax``.

The protocol every layer follows is in :mod:`~reflrp.layers.base`.  Layers copy the arrays they are given and
make the copies read-only; they never initialise weights, and they know nothing of rules.  Shapes passed to
``output_shape`` are per-sample (without the batch axis).
"""

from reflrp.layers.activations import (
    GELU,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from reflrp.layers.affine import BatchNorm1d, BatchNorm2d, BatchNorm3d, Linear, Scale
from reflrp.layers.base import (
    LAYER_TYPES,
    ROLES,
    Activation,
    AffineLayer,
    Layer,
    LinearMap,
    LinearOperator,
    Routing,
)
from reflrp.layers.convolution import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from reflrp.layers.embedding import Embedding
from reflrp.layers.linear import Add, Mean, Upsample
from reflrp.layers.normalization import GroupNorm, LayerNorm, RMSNorm
from reflrp.layers.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from reflrp.layers.product import MatMul, Multiply
from reflrp.layers.reorder import Permute, Roll
from reflrp.layers.routing import (
    Concat,
    ConstantConcat,
    Crop,
    Dropout,
    Expand,
    Flatten,
    Identity,
    Narrow,
    Pad,
    Reshape,
    ZeroPad2d,
)

#: Layer families that composites and profiles name together.
CONVOLUTIONS = (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
BATCHNORMS = (BatchNorm1d, BatchNorm2d, BatchNorm3d)
AVERAGE_POOLS = (AvgPool1d, AvgPool2d, AvgPool3d, AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d)
MAX_POOLS = (MaxPool1d, MaxPool2d, MaxPool3d)

__all__ = [
    "AVERAGE_POOLS",
    "MAX_POOLS",
    "BATCHNORMS",
    "CONVOLUTIONS",
    "GELU",
    "GroupNorm",
    "LAYER_TYPES",
    "LayerNorm",
    "MatMul",
    "Mean",
    "RMSNorm",
    "ROLES",
    "Activation",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "Add",
    "AffineLayer",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Concat",
    "ConstantConcat",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Crop",
    "Dropout",
    "Embedding",
    "Expand",
    "Flatten",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Linear",
    "LinearMap",
    "LinearOperator",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Mish",
    "Multiply",
    "Narrow",
    "Pad",
    "Permute",
    "PReLU",
    "ReLU",
    "ReLU6",
    "Reshape",
    "Roll",
    "Routing",
    "Scale",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Upsample",
    "ZeroPad2d",
]
