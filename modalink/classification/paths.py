"""Relative paths in recipe configs, made absolute once when the config is loaded."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["absolute"]


def absolute(path: str | os.PathLike | None, base: str | os.PathLike | None = None) -> str | None:
    """``path`` as an absolute, normalised string (relative ones taken from ``base``, default the
    current folder); ``None`` and ``""`` are returned as they are."""
    if path is None or str(path) == "":
        return None if path is None else str(path)
    b = Path(os.path.abspath(base if base is not None else os.getcwd()))
    p = Path(path).expanduser()
    return os.path.normpath(p if p.is_absolute() else b / p)
