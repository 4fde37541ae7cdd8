"""The parts of a dataset run (:func:`reflrp.explain_dataset`): one batch's explanation and ledger totals,
where results go (memory, a ``.npy`` file, a resumable Zarr store), and what identifies a run."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass

import numpy as np

from reflrp.errors import ReflrpError
from reflrp.explain import explain, explained_node
from reflrp.files import discard, partial_name
from reflrp.importers.common import require
from reflrp.validate import check_memory

#: The per-sample ledger totals, columns of ``DatasetExplanation.totals``.
TOTALS = ("target_value", "input_relevance", "bias", "stabilizer", "dropped", "gradient", "closure")


@dataclass(frozen=True, eq=False)
class DatasetExplanation:
    """What :func:`explain_dataset` made.

    Attributes
    ----------
    relevance : ndarray, numpy memmap, zarr array or dask array of shape (N, *x.shape[1:])
    totals : ndarray (or dask array) of shape (N, len(TOTALS)), float64
        Per sample: target value, input relevance, what biases, stabilizers, dropped units and gradient steps
        absorbed (summed over the nodes), and the closure.  ``totals[:, TOTALS.index("closure")]`` is ~0.
    location : str or None
        Where the relevance was written.
    """

    relevance: object
    totals: object
    location: str | None = None

    def __repr__(self):
        def show(array):
            return f"{type(array).__name__} {tuple(array.shape)} {array.dtype}"

        return (f"DatasetExplanation(relevance: {show(self.relevance)}, totals: {show(self.totals)}, location: "
                f"{self.location!r})")

    def total(self, name):
        """One column of :attr:`totals` by name (see :data:`TOTALS`)."""
        if name not in TOTALS:
            raise ReflrpError(f"total: {name!r} is not one of {', '.join(TOTALS)}")
        return self.totals[:, TOTALS.index(name)]


@dataclass(frozen=True, eq=False)
class Method:
    """How every sample of a run is explained: the ``rules``, the ``seed`` and the ``profile`` of
    :func:`reflrp.explain` (the seed already resolved against the profile)."""

    rules: object
    seed: str
    profile: object

    @classmethod
    def of(cls, rules, seed, profile):
        from reflrp import validate
        from reflrp.conventions import as_profile

        profile = as_profile(profile)
        seed = profile.seed if seed is None else validate.choice(seed, "seed", ("value", "unit"))
        return cls(rules, seed, profile)


def explain_batch(model, x, target, method):
    """``(relevance, totals)`` for one batch: the work every path of :func:`explain_dataset` does."""
    e = explain(model, x, target, method.rules, seed=method.seed, profile=method.profile)
    if len(e.sample) != len(x):
        raise ReflrpError(f"explain_dataset makes one map per sample; target {type(target).__name__} makes "
                          f"{len(e.sample)} for {len(x)} samples")
    ledger = e.ledger
    columns = [ledger.target_value, ledger.input_relevance] + [ledger.total(c) for c in ("bias", "stabilizer",
                                                                                        "dropped", "gradient")]
    totals = np.stack([*columns, ledger.closure()], axis=1)
    return e.relevance, totals


def _describe(value):
    """A canonical text for fingerprints: dataclasses by fields, arrays by dtype, shape and content digest."""
    if isinstance(value, np.ndarray):
        return f"array({value.dtype},{value.shape},{hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()})"
    if isinstance(value, type):
        return value.__qualname__
    if is_dataclass(value):
        inner = ",".join(f"{f.name}={_describe(getattr(value, f.name))}" for f in fields(value))
        return f"{type(value).__qualname__}({inner})"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_describe(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_describe(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def fingerprint(model, target, method, shape, dtype, batch_size):
    """What identifies a run: the same fingerprint means the same relevance, so a stored run may be resumed."""
    parts = [_describe([(n.name, n.layer, n.inputs) for n in model.nodes]), model.output, _describe(target),
             _describe(method.rules), method.seed, _describe(method.profile), str(tuple(shape)), str(np.dtype(dtype)),
             str(batch_size)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextmanager
def progress_bar(progress, total):
    """A tqdm bar over ``total`` samples (None: unknown, the bar counts without a total; no bar, None, without
    ``progress``) for the ``with`` block; after a failure it is erased, so the error is the only thing left on
    stderr."""
    if not progress:
        yield None
        return
    import tqdm  # a core dependency, imported when a bar is first shown

    bar = tqdm.tqdm(total=total, unit="sample", desc="explaining", dynamic_ncols=True)
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


def output_ndim(model, x):
    return len(model.shapes(x.shape[1:])[explained_node(model)])


class _Memory:
    def __init__(self, shape, dtype):
        nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize + shape[0] * len(TOTALS) * 8
        check_memory(nbytes, f"explain_dataset's {shape[0]} relevance maps in memory",
                     "; write them to a file instead (out='....npy' or '....zarr')")
        self.relevance = np.empty(shape, dtype)
        self.totals = np.empty((shape[0], len(TOTALS)))
        self.location = None

    def done(self, k, x):
        """Whether batch ``k`` (inputs ``x``) was computed by an earlier run."""
        return False

    def write(self, k, start, stop, x, relevance, totals):
        self.relevance[start:stop] = relevance
        self.totals[start:stop] = totals

    def result(self):
        return DatasetExplanation(self.relevance, self.totals, self.location)

    def abort(self):
        """Called when the run fails: undo what would look like a result; returns what became of ``out``."""
        return None


class _Npy(_Memory):
    """A ``.npy`` file and its ``.totals.npy``, memory-mapped and filled batch by batch under temporary names that
    take the final names only when the run is complete (:meth:`result`); a failed run removes them (:meth:`abort`),
    so nothing at ``out`` ever looks like a result it is not."""

    def __init__(self, path, shape, dtype):
        self.location = path
        self.final = (path, path[: -len(".npy")] + ".totals.npy")
        self.partial = tuple(partial_name(where) for where in self.final)
        try:
            self.relevance = np.lib.format.open_memmap(self.partial[0], mode="w+", dtype=dtype, shape=shape)
            self.totals = np.lib.format.open_memmap(self.partial[1], mode="w+", dtype=np.float64,
                                                    shape=(shape[0], len(TOTALS)))
        except OSError as error:
            self.abort()
            raise ReflrpError(f"out {path!r} cannot be written: {error.strerror or error}") from None

    def result(self):
        self.relevance.flush()
        self.totals.flush()
        self.relevance = self.totals = None  # unmapped before the files are renamed
        for partial, final in zip(self.partial[::-1], self.final[::-1]):  # the relevance file last
            os.replace(partial, final)
        relevance, totals = (np.load(where, mmap_mode="r+") for where in self.final)
        return DatasetExplanation(relevance, totals, self.location)

    def abort(self):
        self.relevance = self.totals = None
        for partial in self.partial:
            discard(partial)
        return f"out {self.location!r} was not written (the partial files were removed)"


def digest(x):
    """The SHA-256 of a batch's inputs, as 32 bytes."""
    return np.frombuffer(hashlib.sha256(np.ascontiguousarray(x).tobytes()).digest(), dtype=np.uint8)


class _Zarr:
    """relevance (N, ...), totals (N, 7), done (batches,) and each batch's input digest in one Zarr group; a run
    with the same fingerprint resumes, and refuses a batch whose inputs changed since it was stored."""

    def __init__(self, path, shape, dtype, batch_size, fingerprint_):
        zarr = require("zarr", "dataset", "writing Zarr")
        self.location = path
        exists = os.path.exists(path)
        if exists and os.path.isdir(path) and os.listdir(path) and not any(
                os.path.exists(os.path.join(path, meta)) for meta in ("zarr.json", ".zgroup", ".zarray")):
            raise ReflrpError(f"out {path!r} is a folder that is not a Zarr store; choose another path")
        try:
            group = zarr.open_group(path, mode="a")
        except Exception as error:
            raise ReflrpError(f"out {path!r} cannot be opened as a Zarr store: {type(error).__name__}: "
                              f"{error}") from None
        batches = -(-shape[0] // batch_size)
        expected = {"relevance": (tuple(shape), np.dtype(dtype)), "totals": ((shape[0], len(TOTALS)), np.float64),
                    "done": ((batches,), np.bool_), "input_digest": ((batches, 32), np.uint8)}
        present = sorted(group.keys()) if exists else []
        if present:
            if group.attrs.get("fingerprint") != fingerprint_:
                raise ReflrpError(f"out {path!r} holds a run with another model, dataset, target, rules or batch "
                                  f"size (or is not a reflrp run); delete it or choose another path")
            for name, (array_shape, array_dtype) in expected.items():
                stored = group.get(name)
                if stored is None or not hasattr(stored, "dtype") or tuple(stored.shape) != array_shape or \
                        np.dtype(stored.dtype) != array_dtype:
                    raise ReflrpError(f"out {path!r}: the stored run's {name!r} is missing or not "
                                      f"{np.dtype(array_dtype)} {array_shape}: the store was changed; delete it or "
                                      f"choose another path")
        else:
            chunk = (batch_size, *shape[1:])
            group.create_array("relevance", shape=shape, dtype=dtype, chunks=chunk, fill_value=0)
            group.create_array("totals", shape=(shape[0], len(TOTALS)), dtype="float64",
                               chunks=(batch_size, len(TOTALS)), fill_value=0)
            group.create_array("done", shape=(batches,), dtype="bool", chunks=(1,), fill_value=False)
            group.create_array("input_digest", shape=(batches, 32), dtype="uint8", chunks=(1, 32), fill_value=0)
            group.attrs.update(fingerprint=fingerprint_, totals=list(TOTALS), batch_size=batch_size, complete=False)
        self.group = group
        self.completed = np.asarray(group["done"][:])

    def done(self, k, x):
        if not self.completed[k]:
            return False
        if not np.array_equal(np.asarray(self.group["input_digest"][k]), digest(x)):
            raise ReflrpError(f"out {self.location!r}: batch {k}'s inputs differ from those of the stored run; delete "
                              f"it or choose another path")
        return True

    def write(self, k, start, stop, x, relevance, totals):
        self.group["relevance"][start:stop] = relevance
        self.group["totals"][start:stop] = totals
        self.group["input_digest"][k] = digest(x)
        self.group["done"][k] = True  # last: a batch counts as done once its data is stored

    def result(self):
        if not self.group.attrs.get("complete"):
            self.group.attrs["complete"] = bool(np.all(self.group["done"][:]))
        return DatasetExplanation(self.group["relevance"], self.group["totals"], self.location)

    def abort(self):
        done = np.asarray(self.group["done"][:])
        return (f"out {self.location!r} keeps the {int(done.sum())} of {len(done)} batches finished before this and is "
                f"marked incomplete; the same call on the same inputs continues from there")


@contextmanager
def filling(sink):
    """The ``with`` block that fills ``sink``: when it fails, the sink undoes what would look like a result and the
    error carries a note saying what became of ``out``."""
    try:
        yield sink
    except BaseException as error:
        note = sink.abort()
        if note:
            error.add_note(note)
        raise


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def sources(inputs):
    """The files an array's data are read from (a numpy memmap's), for refusing to overwrite them."""
    name = getattr(inputs, "filename", None)
    return [name] if isinstance(name, (str, os.PathLike)) else []


def _npy_header(dtype, shape, length=None):
    """A ``.npy`` (format 1.0) header for ``shape``, padded with spaces to ``length`` bytes (by default the
    smallest multiple of 64 that holds it)."""
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    if length is None:
        length = -(-(10 + len(text) + 1) // 64) * 64
    return b"\x93NUMPY\x01\x00" + (length - 10).to_bytes(2, "little") + text.encode("latin1") + \
        b" " * (length - 11 - len(text)) + b"\n"


class NpyStream:
    """A ``.npy`` file and its ``.totals.npy`` of a length not known in advance (an iterable of batches), appended
    batch by batch, so that one batch of maps is held at a time.  Each file starts with a header padded to hold any
    sample count, rewritten with the real count when the run is complete; until then, and after a failure, the
    files have temporary names, as :class:`_Npy`'s."""

    #: The placeholder count: as many digits as any count can have.
    _COUNT = 10**19 - 1

    def __init__(self, path):
        self.location = path
        self.final = (path, path[: -len(".npy")] + ".totals.npy")
        self.partial = tuple(partial_name(where) for where in self.final)
        self.handles, self.headers, self.count = None, None, 0

    def write(self, relevance, totals):
        if self.handles is None:
            self.layout = ((relevance.dtype, relevance.shape[1:]), (np.float64, (len(TOTALS),)))
            self.headers = [_npy_header(dtype, (self._COUNT, *shape)) for dtype, shape in self.layout]
            try:
                self.handles = [open(where, "wb") for where in self.partial]
            except OSError as error:
                raise ReflrpError(f"out {self.location!r} cannot be written: {error.strerror or error}") from None
            for handle, header in zip(self.handles, self.headers):
                handle.write(header)
        for handle, array in zip(self.handles, (relevance, totals)):
            handle.write(np.ascontiguousarray(array).tobytes())
        self.count += len(relevance)

    def result(self):
        for handle, header, (dtype, shape) in zip(self.handles, self.headers, self.layout):
            handle.seek(0)
            handle.write(_npy_header(dtype, (self.count, *shape), len(header)))
            handle.close()
        for partial, final in zip(self.partial[::-1], self.final[::-1]):  # the relevance file last
            os.replace(partial, final)
        relevance, totals = (np.load(where, mmap_mode="r+") for where in self.final)
        return DatasetExplanation(relevance, totals, self.location)

    def abort(self):
        for handle in self.handles or ():
            handle.close()
        for partial in self.partial:
            discard(partial)
        return f"out {self.location!r} was not written (the partial files were removed)"


def out_path(out, read_from=()):
    """``out`` as a path, checked before anything runs: its folder exists and is writable, it ends in .npy or
    .zarr, and it is not the file the inputs are read from."""
    from reflrp.files import path_argument

    path = path_argument(out, "out")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ReflrpError(f"out {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ReflrpError(f"out {path!r}: folder {folder!r} is not writable")
    if path.endswith(".npy"):
        for where in (path, path[: -len(".npy")] + ".totals.npy"):
            if os.path.isdir(where):
                raise ReflrpError(f"out {path!r}: {where!r} is a folder")
            if any(_same_file(where, source) for source in read_from):
                raise ReflrpError(f"out {path!r}: {where!r} is the file the inputs are read from; writing it "
                                  f"would destroy them")
    elif not path.endswith(".zarr"):
        raise ReflrpError(f"out {path!r} must end in .npy or .zarr")
    return path


def sink_for(out, model, target, method, shape, dtype, batch_size, read_from=()):
    """Where a run of known size writes: memory, a .npy file or a resumable Zarr store."""
    if out is None:
        return _Memory(shape, dtype)
    path = out_path(out, read_from)
    if path.endswith(".npy"):
        return _Npy(path, shape, dtype)
    return _Zarr(path, shape, dtype, batch_size, fingerprint(model, target, method, shape, dtype, batch_size))


__all__ = ["TOTALS", "DatasetExplanation", "Method", "NpyStream", "digest", "explain_batch", "fingerprint",
           "out_path", "output_ndim",
           "progress_bar", "filling", "sink_for", "sources"]
