"""The four steps of LRP, and what each step absorbed.

For a linear layer every rule is (Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview")::

    z    = layer.linear(inputs, rho(W)) + rho(b)    # step 1: a forward pass, maybe with modified parameters
    s    = r_out / stabilize(z)                     # step 2: elementwise
    c    = layer.adjoint(s, inputs, rho(W))         # step 3: the exact transpose of the bias-free map
    r_in = a * c                                    # step 4: elementwise

:func:`z_rule` runs them with the layer's own parameters, :func:`modified_rule` with modified ones (and inputs
split into parts).  Both return what the step absorbed alongside the relevance, so every rule's ledger entries
come from one place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from reflrp.arrays import unbroadcast
from reflrp.errors import ReflrpError
from reflrp.kernels import fused, sums


class Absorbed(NamedTuple):
    """Relevance a rule absorbed at one layer (negative: injected), per sample: ndarrays of shape (N,), float64.

    Attributes
    ----------
    bias : the biases' share (for a softmax's Taylor rule, the expansion's zeroth-order term).
    stabilizer : the stabilizer's share.
    dropped : relevance of units that pass nothing on (a zero denominator, an AlphaBeta side without
        contributions, a Gamma unit with ``z = 0``, a position ZeroPad2d created, a class token).
    gradient : relevance created or destroyed by a non-conservative plain-gradient step.
    """

    bias: np.ndarray
    stabilizer: np.ndarray
    dropped: np.ndarray
    gradient: np.ndarray

    @classmethod
    def nothing(cls, n):
        """Nothing absorbed by any of ``n`` samples."""
        return cls(*(np.zeros(n) for _ in cls._fields))

    def plus(self, other, sign=1.0):
        """Column by column ``self + sign * other``."""
        return Absorbed(*(mine + sign * theirs for mine, theirs in zip(self, other)))


class Propagation(NamedTuple):
    """What one rule did at one layer.

    Attributes
    ----------
    r_in : list of ndarray
        Relevance for each input of the layer, shaped like that input.
    absorbed : Absorbed
    """

    r_in: list
    absorbed: Absorbed


def positive_part(x):
    """``x+ = max(x, 0)``."""
    return np.maximum(x, 0)


def negative_part(x):
    """``x- = min(x, 0)``."""
    return np.minimum(x, 0)


def signed_parts(x):
    """``(x+, x-)``, what sign-splitting rules (z+, alpha-beta, Gamma, ZBox) take apart (one pass)."""
    return fused.signed_parts(x)


def per_sample(x):
    """Sum over all axes but the first, in float64, in a fixed order (numpy's: :mod:`reflrp.kernels.sums`)."""
    return sums.row_sums(x)


def _absorbed(r, z, s, dropped, stabilizer, bias_term, sample):
    """Steps 2's leftovers: the bias's share ``sum(s * b)``, the stabilizer's ``sum(r - dropped - s * z)``
    (0 by definition when its epsilon is 0; ``z`` includes the bias, one row per sample) and the dropped units'
    (``dropped`` None: none)."""
    n = len(r)
    if stabilizer.epsilon == 0:
        stabilizer = np.zeros(n)
    else:
        stabilizer = sums.residual_sums(r if dropped is None else r - dropped, z, s, sample)
    return Absorbed(
        bias=np.zeros(n) if bias_term is None else sums.scaled_sums(s, bias_term),
        stabilizer=stabilizer,
        dropped=np.zeros(n) if dropped is None else per_sample(dropped),
        gradient=np.zeros(n),
    )


def rows(x, sample):
    """``x`` with one row per explanation: ``x[sample]``, or ``x`` itself when ``sample`` is None.

    Rules receive the layer's inputs and output once per *sample* and ``r_out`` once per *explanation*;
    ``sample[m]`` is the sample of explanation ``m`` (None: one explanation per sample, in order).  What depends
    only on the inputs (the forward-like products of step 1) is computed once per sample, then spread to the
    explanations with :func:`rows`.
    """
    return x if sample is None else x[sample]


def z_rule(layer, inputs, r_out, stabilizer, z, bias=None, sample=None):
    """The four steps with the layer's own parameters: ``r_in_k = a_k * adjoint(r_out / stabilize(z))_k``.

    ``z`` is the layer's output (with ``bias``, the layer's bias, or without it); any linear layer, any number
    of inputs.  ``stabilizer`` is a :class:`~reflrp.stabilize.Stabilizer`.  ``inputs`` and ``z`` hold one row per
    sample, ``r_out`` one per explanation (see :func:`rows`).
    """
    s, dropped = stabilizer.quotient(r_out, z, sample)  # stabilized once per sample
    # the adjoint reads only the inputs' shapes, except max pooling's, which routes to each row's winners
    c = layer.adjoint(s, [rows(a, sample) for a in inputs] if layer.role == "selection" else inputs)
    bias_term = None if bias is None else layer.expand_bias(bias, z.ndim)
    r_in = [fused.sum_of_products([a], [ck], sample) for a, ck in zip(inputs, c)]
    return Propagation(r_in, _absorbed(r_out, z, s, dropped, stabilizer, bias_term, sample))


def held_rule(layer, inputs, r_out, stabilizer, z, sample=None):
    """The z-rule on a normalisation with its statistics held at their values for the input (a linear map then):
    ``r_in = a * layer.adjoint_held(r_out / stabilize(z), a)``, ``z`` the layer's output."""
    s, dropped = stabilizer.quotient(r_out, z, sample)
    a = rows(inputs[0], sample)
    r_in = a * layer.adjoint_held(s, a)
    return Propagation([r_in], _absorbed(r_out, z, s, dropped, stabilizer, None, sample))


def contribution_rule(layer, inputs, r_out, stabilizer, z, shares, sample=None):
    """The four steps on a product of two inputs whose outputs sum contributions ``a_0[.., i, j] a_1[.., j, k]``
    (:class:`~reflrp.layers.MatMul`): ``s = r_out / stabilize(z)``, ``c = layer.partials(s, inputs)`` (the adjoint
    in each factor with the other fixed), ``r_in_k = shares[k] * a_k * c_k``: each contribution's relevance goes to
    its two factors in the proportions ``shares`` (which sum to 1).  A share of 0 gives exact zeros."""
    s, dropped = stabilizer.quotient(r_out, z, sample)
    spread = [rows(a, sample) for a in inputs]
    c = layer.partials(s, spread)
    r_in = []
    for a, ck, share in zip(spread, c, shares):
        r = a * ck
        r_in.append(np.zeros_like(r) if share == 0 else r if share == 1 else r * r.dtype.type(share))
    return Propagation(r_in, _absorbed(r_out, z, s, dropped, stabilizer, None, sample))


class Step(NamedTuple):
    """One :func:`modified_rule` pass: the input relevance of one input and what the pass absorbed."""

    r_in: np.ndarray
    absorbed: Absorbed


def modified_rule(layer, a, r_out, stabilizer, terms, bias=None, sample=None):
    """The four steps with modified parameters on an affine layer: for ``terms = [(x_k, W_k)]`` and bias ``b``,
    ``z = sum_k linear(x_k, W_k) + b``, ``s = r_out / stabilize(z)``, ``r_in = sum_k x_k * adjoint(s, W_k)``.

    ``a`` is the layer's input (its shape is what the adjoint produces).  ``a``, the ``x_k`` and ``z`` hold one
    row per sample, ``r_out`` and ``r_in`` one per explanation (see :func:`rows`).  A term whose ``x`` is zero
    everywhere in the batch (``a-`` after a ReLU, a zero bound) adds exact zeros to ``z`` and to ``r_in``: it is
    skipped, and the zeros of ``r_in`` are made +0 so that skipping it changes no bit.
    """
    return modified_passes(layer, a, [(r_out, terms, bias)], stabilizer, sample)[0]


def modified_passes(layer, a, passes, stabilizer, sample=None):
    """Several :func:`modified_rule` passes on one layer, ``passes = [(r_out, terms, bias)]`` -> ``[Step]``, bit
    for bit as many calls: the products of all passes that read the same input (Gamma's and AlphaBeta's two
    sides after a ReLU) are taken together with :meth:`~reflrp.layers.AffineLayer.linear_many`, which unfolds a
    convolution's input once for all of them."""
    distinct = {id(x): x for _, terms, _ in passes for x, _ in terms}
    nonzero = {key: bool(np.any(x)) for key, x in distinct.items()}  # each input looked at once
    kept = [[(x, w) for x, w in terms if nonzero[id(x)]] or terms[:1] for _, terms, _ in passes]
    weights = {}  # id(x) -> (x, the weights it is multiplied with, in the order the passes use them)
    for terms in kept:
        for x, weight in terms:
            weights.setdefault(id(x), (x, []))[1].append(weight)
    products = {key: iter(layer.linear_many([x], ws)) for key, (x, ws) in weights.items()}
    steps = []
    for (r_out, _, bias), terms in zip(passes, kept):
        z = next(products[id(terms[0][0])])  # a new array: summed into in place
        for x, _ in terms[1:]:
            z += next(products[id(x)])
        steps.append(_modified_steps(layer, a, r_out, stabilizer, terms, z, bias, sample))
    return steps


def _modified_steps(layer, a, r_out, stabilizer, terms, z, bias, sample):
    """Steps 2-4 of :func:`modified_rule`, given the sum ``z`` of the terms' products."""
    bias_term = None if bias is None else layer.expand_bias(bias, z.ndim)
    if bias_term is not None:
        z += bias_term
    if not fused.all_finite(z):
        raise ReflrpError(f"the forward pass with the rule's modified parameters overflowed (beyond the range of "
                          f"{z.dtype}): the rule's parameters are too large for this layer")
    s, dropped = stabilizer.quotient(r_out, z, sample)  # stabilized once per sample
    # -0 becomes +0 at the end, as when a zero term is added
    r_in = fused.sum_of_products([x for x, _ in terms], (layer.adjoint(s, [a], weight)[0] for _, weight in terms),
                                 sample, plus_zero=True)
    return Step(r_in, _absorbed(r_out, z, s, dropped, stabilizer, bias_term, sample))


__all__ = ["Absorbed", "Propagation", "Step", "modified_passes", "modified_rule", "negative_part", "per_sample",
           "positive_part", "rows", "signed_parts", "unbroadcast", "z_rule",
           "contribution_rule", "held_rule"]
