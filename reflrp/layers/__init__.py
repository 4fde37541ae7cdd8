"""Layers: frozen parameter holders with PyTorch names, argument names and layouts, by family.

* :mod:`~reflrp.layers.affine`: ``Linear``, ``Conv1d``, ``Conv2d``, ``ConvTranspose2d``, ``BatchNorm1d``,
  ``BatchNorm2d``;
* :mod:`~reflrp.layers.pooling`: ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``MaxPool2d``;
* :mod:`~reflrp.layers.linear`: ``Upsample``, ``Add``;
* :mod:`~reflrp.layers.routing`: ``Identity``, ``Dropout``, ``Flatten``, ``Reshape``, ``Permute``, ``Concat``,
  ``Crop``, ``ZeroPad2d``;
* :mod:`~reflrp.layers.activations`: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``, ``Softmax``.

The protocol every layer follows is in :mod:`~reflrp.layers.base`.  Layers copy the arrays they are given and
make the copies read-only; they never initialise weights, and they know nothing of rules.  Shapes passed to
``output_shape`` are per-sample (without the batch axis).
"""

from reflrp.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from reflrp.layers.affine import BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose2d, Linear
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
from reflrp.layers.linear import Add, Upsample
from reflrp.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from reflrp.layers.routing import Concat, Crop, Dropout, Flatten, Identity, Permute, Reshape, ZeroPad2d

#: Layer families that composites and profiles name together.
CONVOLUTIONS = (Conv1d, Conv2d, ConvTranspose2d)
BATCHNORMS = (BatchNorm1d, BatchNorm2d)
AVERAGE_POOLS = (AvgPool2d, AdaptiveAvgPool2d)

__all__ = [
    "AVERAGE_POOLS",
    "BATCHNORMS",
    "CONVOLUTIONS",
    "LAYER_TYPES",
    "ROLES",
    "Activation",
    "AdaptiveAvgPool2d",
    "Add",
    "AffineLayer",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "Crop",
    "Dropout",
    "Flatten",
    "Identity",
    "Layer",
    "LeakyReLU",
    "Linear",
    "LinearMap",
    "LinearOperator",
    "MaxPool2d",
    "Permute",
    "ReLU",
    "Reshape",
    "Routing",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Upsample",
    "ZeroPad2d",
]
