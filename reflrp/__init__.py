"""reflrp: a reference implementation of Layer-wise Relevance Propagation.

Exact (float64 by default), deterministic (bit-identical across runs, processes, thread counts and batch
composition) and accountable (a ledger of where relevance went, closing to rounding error).
"""

from reflrp import canonize, compat, composites, conventions, models, rules, targets
from reflrp.compat import Comparison, compare
from reflrp.dataset import DatasetExplanation, explain_dataset
from reflrp.errors import ReflrpError
from reflrp.explain import Explanation, explain
from reflrp.graph import Graph, GraphBuilder, Node, Sequential
from reflrp.importers import from_keras, from_onnx, from_torch
from reflrp.io import load, save
from reflrp.layers import (
    GELU,
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Concat,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Crop,
    Dropout,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    Mish,
    Multiply,
    Narrow,
    Permute,
    ReLU,
    ReLU6,
    Reshape,
    Scale,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
    Upsample,
    ZeroPad2d,
)
from reflrp.ledger import Ledger

__version__ = "0.2.0"

__all__ = [
    "AdaptiveAvgPool2d",
    "Add",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Concat",
    "DatasetExplanation",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "Crop",
    "Dropout",
    "Explanation",
    "Flatten",
    "GELU",
    "Graph",
    "GraphBuilder",
    "Hardsigmoid",
    "Hardswish",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Ledger",
    "Linear",
    "MaxPool2d",
    "Mish",
    "Multiply",
    "Narrow",
    "Node",
    "Permute",
    "ReLU",
    "ReLU6",
    "ReflrpError",
    "Reshape",
    "Scale",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "Upsample",
    "ZeroPad2d",
    "Comparison",
    "canonize",
    "compare",
    "composites",
    "compat",
    "conventions",
    "explain",
    "explain_dataset",
    "from_keras",
    "from_onnx",
    "from_torch",
    "load",
    "models",
    "save",
    "rules",
    "targets",
]
