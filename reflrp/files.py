"""Paths given by users: checked once, the same way everywhere (model files, inputs, outputs)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

from reflrp.errors import ReflrpError


def path_argument(path, what):
    """``path`` as a string: a str or os.PathLike that names something (no bytes, no NUL)."""
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise ReflrpError(f"{what} must be a path (str or os.PathLike), got {type(path).__name__}")
    where = os.fspath(path)
    if not isinstance(where, str) or not where or "\0" in where:
        raise ReflrpError(f"{what} {where!r} is not a valid path")
    return where


def existing_file(path, what):
    """``path`` as a string, refusing anything that is not an existing regular file."""
    where = path_argument(path, what)
    if os.path.isdir(where):
        raise ReflrpError(f"{what} {where!r} is a directory, not a file")
    if not os.path.exists(where):
        raise ReflrpError(f"{what} {where!r} does not exist")
    if not os.path.isfile(where):
        raise ReflrpError(f"{what} {where!r} is not a regular file")
    return where


@contextmanager
def written(path):
    """Write a file so that nothing half-written ever sits at ``path``: yields a temporary name in the same folder
    with the same suffix (writers that choose a format by suffix keep working); when the block ends normally the
    file takes ``path``'s place in one rename, when it fails (an error, Ctrl-C) the temporary file is removed.

    Parameters
    ----------
    path : str
        The final path (already checked by the caller).
    """
    temporary = partial_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        discard(temporary)
        raise


def partial_name(path):
    """A fresh hidden name beside ``path`` for its content while it is being written: ``.NAME.<random>.partial.SUFFIX``
    (the writer creates it, so it gets the user's usual file permissions)."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, suffix = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.{uuid.uuid4().hex[:12]}.partial{suffix}")


def discard(path):
    """Remove a file that must not be left behind, if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


__all__ = ["discard", "existing_file", "partial_name", "path_argument", "written"]


def output_file(path, suffix, what):
    """The path a file will be written to, checked before anything runs: ``suffix`` is appended when missing
    (as numpy does for ``.npy``), the folder must exist and be writable, and the path must not be a folder."""
    if not path or os.path.basename(path) == "":
        raise ReflrpError(f"{what} {path!r} names no file")
    if not (path.endswith(suffix) if suffix == ".npy" else path.lower().endswith(suffix)):
        if suffix != ".npy":
            raise ReflrpError(f"{what} {path!r} must end in {suffix}")
        path += suffix  # what numpy.save writes to (it looks for exactly ".npy")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ReflrpError(f"{what} {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise ReflrpError(f"{what} {path!r} is a folder")
    if not os.access(folder, os.W_OK):
        raise ReflrpError(f"{what} {path!r}: folder {folder!r} is not writable")
    return path


def output_folder(path, what):
    """A folder that exists or can be created, checked before anything runs."""
    if not path:
        raise ReflrpError(f"{what} is empty; name a folder")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ReflrpError(f"{what} {path!r} exists and is not a folder")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise ReflrpError(f"{what} {path!r}: cannot create it inside {existing!r}")
    return path
