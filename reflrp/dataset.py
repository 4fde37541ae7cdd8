"""``explain_dataset``: explanations for a whole dataset, batch by batch, with each sample's ledger totals.

The inputs may be a numpy (or Zarr, or any sliceable) array, an iterable of batches, or a dask array.  Relevance
maps go to memory, to a ``.npy`` file or to a Zarr store as they are produced, so a run over 50,000 inputs never
holds 50,000 maps.  A Zarr run records which batches are done: run it again and it computes only what is missing.
With a dask array the result is a lazy dask array computed wherever dask runs (threads, processes, a
``dask.distributed`` cluster); the model travels to each worker once.  Every sample's relevance is bit-identical
however the inputs are batched or chunked, because a sample's explanation does not depend on its batch (see
docs/determinism.md).
"""

from __future__ import annotations

import numpy as np

from reflrp import validate
from reflrp.errors import ReflrpError
from reflrp.explain import explained_node
from reflrp.graph import Graph
from reflrp.runs import (
    TOTALS,
    DatasetExplanation,
    Method,
    NpyStream,
    explain_batch,
    filling,
    fingerprint,
    out_path,
    output_ndim,
    progress_bar,
    sink_for,
    sources,
)
from reflrp.targets import as_target


def _dataset_target(target, model):
    """The target as a :class:`~reflrp.targets.Target` that makes one explanation per sample (targets with one entry
    per sample are sliced per batch)."""
    from reflrp.targets import Pixels

    if isinstance(target, list) and target and isinstance(target[0], np.ndarray):
        raise ReflrpError("target: give per-sample masks as one boolean array (N, ...)")
    target = as_target(target)
    if isinstance(target, Pixels):
        raise ReflrpError("explain_dataset makes one map per sample; targets.Pixels makes several (use explain)")
    return target


def _is_dask(value):
    return type(value).__module__.startswith("dask.") and hasattr(value, "chunks") and hasattr(value, "dask")


def explain_dataset(model, inputs, target, rules, *, batch_size=32, out=None, progress=True, seed=None,
                    profile="reflrp"):
    """Explain every sample of a dataset, batch by batch.

    Parameters
    ----------
    model : Graph
    inputs : ndarray, zarr array, iterable of batches, or dask array of shape (N, ...)
    target : int, int array (N,), "predicted", boolean masks (N, *output), or a reflrp target
        Per-sample arrays are sliced per batch (``targets.Classes``, ``targets.Mask``, ``targets.Region`` with
        (N, H, W) masks, ``targets.Seed``); others apply to every sample.  One explanation per sample.
    rules : Rule or Composite
    batch_size : int
        Samples per :func:`reflrp.explain` call (array inputs; an iterable gives its own batches and a dask
        array its chunks).  The relevance does not depend on it.
    out : str or os.PathLike, optional
        ``*.npy`` (a memory-mapped array written as it is produced; the totals go to ``*.totals.npy``) or
        ``*.zarr`` (arrays ``relevance``, ``totals``, ``done``; a run with the same model, data, target, rules and
        batch size resumes where it stopped).  ``None``: in memory (a dask input: lazy).
    progress : bool
        A tqdm progress bar on stderr (counts and rate without a total for an iterable of batches).
    seed : "value" or "unit", optional
        As in :func:`reflrp.explain` (default: the profile's).
    profile : str or Profile
        As in :func:`reflrp.explain`.

    Returns
    -------
    DatasetExplanation
    """
    if not isinstance(model, Graph):
        raise ReflrpError(f"model must be a reflrp Graph or Sequential, got {type(model).__name__}")
    batch_size = validate.integer(batch_size, "batch_size", minimum=1, maximum=None)
    progress = validate.boolean(progress, "progress")
    method = Method.of(rules, seed, profile)
    target = _dataset_target(target, model)
    if _is_dask(inputs):
        from reflrp.dataset_dask import explain_dask

        if inputs.ndim >= 2 and not any(np.isnan(c) for chunk in inputs.chunks for c in chunk):
            check_dataset(model, inputs.shape, inputs.dtype, target)
        return explain_dask(model, inputs, target, method, out=out, progress=progress)
    if hasattr(inputs, "shape") and hasattr(inputs, "__getitem__"):
        shape, dtype = check_dataset(model, inputs.shape, getattr(inputs, "dtype", None), target)
        n = shape[0]
        batch_size = min(batch_size, n)
        batches = ((start, inputs[start:start + batch_size]) for start in range(0, n, batch_size))
    elif hasattr(inputs, "__iter__") and not isinstance(inputs, (str, bytes, dict)):
        if out is not None and str(out).endswith(".zarr"):
            raise ReflrpError("an iterable of batches cannot be written to Zarr (its length is unknown); pass an "
                              "array, or write .npy")
        return _stream(model, inputs, target, method, out, progress)
    else:
        raise ReflrpError(f"inputs must be an array (N, ...), an iterable of batches or a dask array, got "
                          f"{type(inputs).__name__}")
    sink = sink_for(out, model, target, method, shape, dtype, batch_size, sources(inputs))
    with progress_bar(progress, n) as bar, filling(sink):
        for k, (start, x) in enumerate(batches):
            x = np.asarray(x)
            stop = min(start + batch_size, n)
            if x.shape != (stop - start, *shape[1:]) or x.dtype != dtype:
                raise ReflrpError(f"inputs[{start}:{stop}] is {x.dtype} {x.shape}, but inputs say they are {dtype} "
                                  f"{shape}: the array does not hold what its shape and dtype describe")
            if not sink.done(k, x):
                validate.batch(x, "the dataset", offset=start)  # a NaN is reported by its place in it
                r, t = explain_batch(model, x, target.for_samples(start, stop, output_ndim(model, x)), method)
                sink.write(k, start, stop, x, r, t)
            if bar is not None:
                bar.update(len(x))
        return sink.result()


def check_dataset(model, shape, dtype, target):
    """A dataset's shape and dtype, checked against the model and the target before anything runs."""
    try:
        shape = tuple(shape)
        dtype = np.dtype(dtype)
    except TypeError:
        raise ReflrpError(f"inputs have no usable shape and dtype (shape {shape!r}, dtype {dtype!r})") from None
    if len(shape) < 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
        raise ReflrpError(f"inputs must be a batch (N, ...) with integer sizes, got shape {shape}")
    shape = tuple(int(v) for v in shape)
    if shape[0] == 0:
        raise ReflrpError("inputs hold no samples (N = 0)")
    if dtype.kind != "f":
        raise ReflrpError(f"inputs must be float32 or float64 (the model's dtype), got {dtype}")
    model.check_input(np.zeros((1, *shape[1:]), dtype=dtype))
    target.check(model.shapes(shape[1:])[explained_node(model)], shape[0])
    return shape, dtype


class _Collected:
    """An iterable's results in memory."""

    def __init__(self):
        self.relevances, self.totals = [], []

    def write(self, relevance, totals):
        self.relevances.append(relevance)
        self.totals.append(totals)

    def result(self):
        return DatasetExplanation(np.concatenate(self.relevances), np.concatenate(self.totals))

    def abort(self):
        return None


def _stream(model, batches, target, method, out, progress):
    """An iterable of batches: results kept in memory, or appended to a .npy file batch by batch (its length is
    unknown in advance: :class:`~reflrp.runs.NpyStream`)."""
    sink = _Collected() if out is None else NpyStream(out_path(out))  # out checked before the first batch
    first, start = None, 0
    with progress_bar(progress, None) as bar, filling(sink):
        for k, x in enumerate(batches):
            if not isinstance(x, np.ndarray):
                try:
                    x = np.asarray(x)
                except ValueError as error:
                    raise ReflrpError(f"batch {k} of the inputs is not a rectangular array: {error}") from None
            x = validate.batch(x, f"batch {k} of the inputs", offset=start)
            first = x.shape[1:] if first is None else first
            if x.shape[1:] != first:
                raise ReflrpError(f"batch {k} of the inputs has samples of shape {x.shape[1:]}, the first batch "
                                  f"{first}")
            r, t = explain_batch(model, x, target.for_samples(start, start + len(x), output_ndim(model, x)), method)
            sink.write(r, t)
            start += len(x)
            if bar is not None:
                bar.update(len(x))
        if first is None:
            raise ReflrpError("inputs held no batch")
        target.check(model.shapes(first)[explained_node(model)], start)  # one entry per sample?
        return sink.result()


__all__ = ["TOTALS", "DatasetExplanation", "explain_batch", "explain_dataset", "fingerprint"]
