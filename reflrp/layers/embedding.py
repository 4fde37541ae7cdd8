"""A token embedding: the lookup that turns token ids into vectors, the first layer of a language model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.layers.base import Layer, array


@dataclass(frozen=True, eq=False, repr=False)
class Embedding(Layer):
    """``weight[ids]`` (PyTorch ``nn.Embedding``): an input of token ids, one per position, held as floats of the
    model's dtype (per-sample shape (tokens,)), becomes (tokens, embedding_dim).

    Not differentiable in its input: relevance reaches each token as the sum over its embedding vector (the rule
    :class:`~reflrp.rules.Pass`), which is what LXT reports as a token's relevance; nothing is absorbed.

    Parameters
    ----------
    weight : ndarray of shape (num_embeddings, embedding_dim)
    """

    weight: np.ndarray = array(ndim=2)

    role: ClassVar[str] = "embedding"

    def output_shape(self, shape):
        if len(shape) != 1:
            raise ReflrpError(f"takes token ids of per-sample shape (tokens,), got {tuple(shape)}")
        return (shape[0], self.weight.shape[1])

    def ids(self, a):
        """The token ids ``a`` holds, as integers; raises unless every entry is one."""
        ids = a.astype(np.int64)
        if not np.array_equal(ids, a) or ids.min(initial=0) < 0 or ids.max(initial=0) >= len(self.weight):
            bad = a[(ids != a) | (ids < 0) | (ids >= len(self.weight))].flat[0]
            raise ReflrpError(f"Embedding: input holds {bad!r}, not a token id in [0, {len(self.weight)})")
        return ids

    def forward(self, inputs):
        return self.weight[self.ids(inputs[0])]


__all__ = ["Embedding"]
