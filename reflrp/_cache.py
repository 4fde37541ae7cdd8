"""Where compiled kernels are cached: never inside the installed package.

numba's default cache goes to a ``__pycache__`` folder next to the source file when that folder is writable.
For an installed package that is ``site-packages/reflrp/kernels/__pycache__``: files pip did not install and
will not remove, so after ``pip uninstall`` (or a switch to an editable install) an empty
``site-packages/reflrp`` folder remains and shadows the real package as a namespace package.

reflrp's kernels therefore use only two of numba's cache locations, in this order, and set nothing
process-wide:

1. ``NUMBA_CACHE_DIR`` when the user set it;
2. the user's cache folder (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``), in a subfolder named after the
   kernels' source folder, so two installs never share entries (numba also checks the source's content hash).

When neither is writable (a read-only home, a locked-down container), kernels compile in memory in every process
instead: slower to start, the same results.
"""

from __future__ import annotations

import os

from numba.core import caching
from numba.core.dispatcher import Dispatcher


def _locator(name):
    # numba 0.59 .. 0.6x name these classes with a leading underscore; later versions without.
    return getattr(caching, name, None) or getattr(caching, f"_{name}")


class _OutOfTreeCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_locator("UserProvidedCacheLocator"), _locator("UserWideCacheLocator")]


class _OutOfTreeFunctionCache(caching.FunctionCache):
    _impl_class = _OutOfTreeCacheImpl


def enable_cache(dispatcher):
    """Give a compiled kernel a disk cache outside the package tree, if any location is writable."""
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT=1: a plain Python function
        return dispatcher
    try:
        dispatcher._cache = _OutOfTreeFunctionCache(dispatcher.py_func)
    except RuntimeError:  # numba: "no locator available": nowhere writable, compile in memory
        pass
    return dispatcher


def cache_folder(dispatcher):
    """The folder a kernel's cache lives in, or ``None`` when it compiles in memory."""
    cache = getattr(dispatcher, "_cache", None)
    if not isinstance(cache, _OutOfTreeFunctionCache):
        return None
    return cache.cache_path


def on_disk(dispatcher):
    """Whether a kernel's disk cache holds an index: it was compiled and cached before (for some argument types)."""
    cache = getattr(dispatcher, "_cache", None)
    if not isinstance(cache, _OutOfTreeFunctionCache):
        return False
    return os.path.exists(cache._cache_file._index_path)


def compiled_here(dispatcher):
    """How many of a kernel's signatures this process compiled instead of loading them from the disk cache."""
    if not isinstance(dispatcher, Dispatcher):
        return 0
    return sum(dispatcher.stats.cache_misses.values())


__all__ = ["cache_folder", "compiled_here", "enable_cache", "on_disk"]
