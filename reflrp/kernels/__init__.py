"""Numerical kernels: pure array functions, no reflrp objects.

Each kernel takes C-contiguous float32 or float64 arrays and integers and returns new arrays.  Forward and
adjoint come in pairs, the adjoint being the exact transpose of the bias-free forward map.  Nothing here
imports from the rest of the package.
"""

from reflrp.kernels.conv import conv2d_adjoint, conv2d_forward, conv2d_forward_many
from reflrp.kernels.conv3d import conv3d_adjoint, conv3d_forward, conv3d_forward_many
from reflrp.kernels.dense import linear_adjoint, linear_forward, tokens_adjoint, tokens_forward
from reflrp.kernels.elementwise import erf, gelu
from reflrp.kernels.pool import (
    adaptive_avgpool2d_adjoint,
    adaptive_avgpool2d_forward,
    adaptive_avgpool_adjoint,
    adaptive_avgpool_forward,
    avgpool2d_adjoint,
    avgpool2d_forward,
    avgpool_adjoint,
    avgpool_forward,
    maxpool2d_adjoint,
    maxpool2d_forward,
    maxpool_adjoint,
    maxpool_forward,
)
from reflrp.kernels.resample import upsample2d_adjoint, upsample2d_forward, upsample_adjoint, upsample_forward

__all__ = [
    "adaptive_avgpool2d_adjoint",
    "adaptive_avgpool2d_forward",
    "adaptive_avgpool_adjoint",
    "adaptive_avgpool_forward",
    "avgpool2d_adjoint",
    "avgpool2d_forward",
    "avgpool_adjoint",
    "avgpool_forward",
    "conv2d_adjoint",
    "conv2d_forward",
    "conv2d_forward_many",
    "conv3d_adjoint",
    "conv3d_forward",
    "conv3d_forward_many",
    "erf",
    "gelu",
    "linear_adjoint",
    "linear_forward",
    "tokens_adjoint",
    "tokens_forward",
    "maxpool2d_adjoint",
    "maxpool2d_forward",
    "maxpool_adjoint",
    "maxpool_forward",
    "upsample2d_adjoint",
    "upsample2d_forward",
    "upsample_adjoint",
    "upsample_forward",
]
