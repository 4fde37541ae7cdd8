"""The dask path of :func:`reflrp.explain_dataset`: one task per chunk of samples, wherever dask runs.

The model enters the task graph once: as a scattered future, broadcast to every worker, when a
``dask.distributed`` client is the scheduler, and otherwise as a single graph key that every chunk's task depends
on.  Each task is :func:`reflrp.dataset.explain_batch` on one chunk, so the result is bit-identical to the
single-process path however the samples are chunked, and a task re-run after a worker died gives the same bits.
"""

from __future__ import annotations

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.importers.common import require
from reflrp.runs import (
    TOTALS,
    DatasetExplanation,
    explain_batch,
    filling,
    fingerprint,
    output_ndim,
    progress_bar,
    sink_for,
)


def _explain_chunk(x, model, target, method, ndim, block_info=None):
    """One chunk: relevance (flattened) and totals side by side, (samples, features + len(TOTALS)) in float64, so
    the two arrays the user sees come from one task per chunk."""
    start, stop = block_info[0]["array-location"][0]
    relevance, totals = explain_batch(model, np.ascontiguousarray(x), target.for_samples(start, stop, ndim), method)
    return np.concatenate([relevance.reshape(len(relevance), -1).astype(np.float64), totals], axis=1)


def _explain_and_store(model, x, target, method, sink, k, start, stop):
    """One chunk explained and written to the Zarr store (or, when an earlier run stored it, only checked)."""
    x = np.ascontiguousarray(x)
    if not sink.done(k, x):
        relevance, totals = explain_batch(model, x, target, method)
        sink.write(k, start, stop, x, relevance, totals)
    return stop - start


def _client():
    """The dask.distributed client that is the current scheduler, or None."""
    import dask.base

    scheduler = dask.base.get_scheduler()
    owner = getattr(scheduler, "__self__", None)
    if owner is not None and type(owner).__name__ == "Client" and type(owner).__module__.startswith("distributed"):
        return owner
    return None


def _model_for_workers(model):
    import dask

    client = _client()
    if client is not None:
        return client.scatter(model, broadcast=True, hash=True)
    return dask.delayed(model, pure=True, traverse=False)


def explain_dask(model, inputs, target, method, *, out=None, progress=True):
    """See :func:`reflrp.explain_dataset`; ``inputs`` is a dask array, ``method`` a :class:`reflrp.runs.Method`."""
    dask = require("dask", "dask", "explaining a dask array")
    import dask.array as da

    if inputs.ndim < 2:
        raise ReflrpError(f"inputs must be a batch (N, ...), got a dask array of shape {inputs.shape}")
    if any(np.isnan(c) for chunk in inputs.chunks for c in chunk):
        raise ReflrpError("inputs has chunks of unknown size; call compute_chunk_sizes() first")
    x = inputs.rechunk({axis: -1 for axis in range(1, inputs.ndim)})  # whole samples in every chunk
    model.check_input(np.zeros((1, *x.shape[1:]), dtype=x.dtype))  # shapes and dtype, before any task runs
    ndim = output_ndim(model, np.zeros((1, *x.shape[1:]), dtype=x.dtype))
    shared = _model_for_workers(model)
    # the task names identify everything the result depends on: same name, same bits
    token = dask.base.tokenize(x, fingerprint(model, target, method, x.shape, x.dtype, x.chunks[0]))
    if out is not None:
        return _store(model, x, target, method, shared, ndim, token, out, progress)
    features, sample = int(np.prod(x.shape[1:])), x.shape[1:]
    both = x.map_blocks(_explain_chunk, shared, target, method, ndim, dtype=np.float64,
                        drop_axis=list(range(2, x.ndim)), chunks=(x.chunks[0], (features + len(TOTALS),)),
                        name=f"reflrp-explain-{token}")
    relevance = da.map_blocks(_relevance_part, both, features, sample, x.dtype, dtype=x.dtype, drop_axis=1,
                              new_axis=list(range(1, len(sample) + 1)), chunks=(x.chunks[0], *((n,) for n in sample)))
    return DatasetExplanation(relevance, both[:, features:])


def _relevance_part(both, features, sample, dtype):
    """A chunk's relevance from the side-by-side array, shaped like its inputs (block by block: no dask reshape)."""
    return both[:, :features].reshape(len(both), *sample).astype(dtype)


def _store(model, x, target, method, shared, ndim, token, out, progress):
    """Explain and write chunk by chunk into a Zarr store, skipping (after checking) chunks an earlier run stored."""
    import dask

    from reflrp.files import path_argument

    path = path_argument(out, "out")
    if not path.endswith(".zarr"):
        raise ReflrpError(f"out {path!r}: a dask array is written to .zarr (or returned lazily with out=None)")
    sizes = x.chunks[0]
    if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
        raise ReflrpError(f"inputs are chunked unevenly along the samples ({sizes}); rechunk them to one size")
    sink = sink_for(path, model, target, method, x.shape, x.dtype, sizes[0])
    writes, starts = [], np.cumsum((0, *sizes))
    for k, block in enumerate(x.to_delayed().ravel()):
        start, stop = int(starts[k]), int(starts[k + 1])
        part = target.for_samples(start, stop, ndim)
        writes.append(dask.delayed(_explain_and_store, pure=False)(shared, block, part, method, sink, k, start,
                                                                   stop, dask_key_name=f"reflrp-store-{k}-{token}"))
    with progress_bar(progress, int(x.shape[0])) as bar, filling(sink):
        _compute(writes, bar)
        return sink.result()


def _compute(writes, bar):
    """Run the writes on the current scheduler, moving the progress bar as chunks finish."""
    import dask

    client = _client()
    if client is not None:
        from distributed import as_completed

        futures = client.compute(writes)
        for future in as_completed(futures):
            done = future.result()
            if bar is not None:
                bar.update(done)
        return
    from dask.callbacks import Callback

    class Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if bar is not None and isinstance(key, str) and key.startswith("reflrp-store-"):
                bar.update(result)

    with Progress():
        dask.compute(*writes)


__all__ = ["explain_dask"]
