"""Paths given by users: checked once, the same way everywhere (model files, inputs, outputs)."""

from __future__ import annotations

import os

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

__all__ = ["existing_file", "path_argument"]
