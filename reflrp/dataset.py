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
from reflrp.graph import Graph
from reflrp.runs import TOTALS, DatasetExplanation, explain_batch, fingerprint, output_ndim, progress_bar, sink_for
from reflrp.targets import as_target


def _dataset_target(target, model):
    """Targets with one entry per sample are sliced per batch; "predicted" is each sample's argmax class."""
    from reflrp.targets import Pixels, Predicted

    if isinstance(target, str):
        if target != "predicted":
            raise ReflrpError(f"target {target!r}: the only named target is 'predicted'")
        return Predicted()
    if isinstance(target, list) and target and isinstance(target[0], np.ndarray):
        raise ReflrpError("target: give per-sample masks as one boolean array (N, ...)")
    target = as_target(target)
    if isinstance(target, Pixels):
        raise ReflrpError("explain_dataset makes one map per sample; targets.Pixels makes several (use explain)")
    return target


def _is_dask(value):
    return type(value).__module__.startswith("dask.") and hasattr(value, "chunks") and hasattr(value, "dask")


def explain_dataset(model, inputs, target, rules, *, batch_size=32, out=None, progress=True, seed="value"):
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
        A tqdm progress bar on stderr (needs ``reflrp[dataset]``).
    seed : "value" or "unit"

    Returns
    -------
    DatasetExplanation
    """
    if not isinstance(model, Graph):
        raise ReflrpError(f"model must be a reflrp Graph or Sequential, got {type(model).__name__}")
    batch_size = validate.integer(batch_size, "batch_size", minimum=1, maximum=None)
    progress = validate.boolean(progress, "progress")
    validate.choice(seed, "seed", ("value", "unit"))
    target = _dataset_target(target, model)
    if _is_dask(inputs):
        from reflrp.dataset_dask import explain_dask

        return explain_dask(model, inputs, target, rules, out=out, progress=progress, seed=seed)
    if hasattr(inputs, "shape") and hasattr(inputs, "__getitem__") and len(getattr(inputs, "shape", ())) >= 2:
        n = int(inputs.shape[0])
        batches = ((start, inputs[start:start + batch_size]) for start in range(0, n, batch_size))
        shape, dtype = tuple(inputs.shape), np.dtype(inputs.dtype)
    elif hasattr(inputs, "__iter__") and not isinstance(inputs, (str, bytes, dict)):
        if out is not None and str(out).endswith(".zarr"):
            raise ReflrpError("an iterable of batches cannot be written to Zarr (its length is unknown); pass an "
                              "array, or write .npy")
        return _stream(model, inputs, target, rules, out, progress, seed)
    else:
        raise ReflrpError(f"inputs must be an array (N, ...), an iterable of batches or a dask array, got "
                          f"{type(inputs).__name__}")
    sink = sink_for(out, model, target, rules, seed, shape, dtype, batch_size)
    bar = progress_bar(progress, n)
    try:
        for k, (start, x) in enumerate(batches):
            x = np.asarray(x)
            stop = start + len(x)
            if not sink.done(k, x):
                r, t = explain_batch(model, x, target.for_samples(start, stop, output_ndim(model, x)), rules, seed)
                sink.write(k, start, stop, x, r, t)
            if bar:
                bar.update(len(x))
    finally:
        if bar:
            bar.close()
    return sink.result()


def _stream(model, batches, target, rules, out, progress, seed):
    """An iterable of batches: results kept in memory, or appended to a .npy file once its first batch fixes the
    shape (the total is unknown in advance, so the file is written with numpy's format after the last batch)."""
    bar = progress_bar(progress, None)
    relevances, totals, start = [], [], 0
    try:
        for x in batches:
            x = validate.batch(np.asarray(x) if not isinstance(x, np.ndarray) else x, "a batch of inputs")
            r, t = explain_batch(model, x, target.for_samples(start, start + len(x), output_ndim(model, x)), rules,
                                 seed)
            relevances.append(r)
            totals.append(t)
            start += len(x)
            if bar:
                bar.update(len(x))
    finally:
        if bar:
            bar.close()
    if not relevances:
        raise ReflrpError("inputs held no batch")
    relevance, totals = np.concatenate(relevances), np.concatenate(totals)
    if out is None:
        return DatasetExplanation(relevance, totals)
    sink = sink_for(out, model, target, rules, seed, relevance.shape, relevance.dtype, len(relevance))
    sink.write(0, 0, len(relevance), None, relevance, totals)
    return sink.result()


__all__ = ["TOTALS", "DatasetExplanation", "explain_batch", "explain_dataset", "fingerprint"]
