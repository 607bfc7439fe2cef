"""Image input: reading image files, beside :mod:`modalink.audio` (files to embed are read
through :func:`modalink.encoders.embed_files.embed_files`, which turns each problem into its
reason tag).

Every problem with a file raises a subclass of :class:`ImageError` that names the file and
carries a short ``reason`` tag (``missing_image``, ``unreadable_image``, ``symlink_loop``), so
an extraction loop can ``except ImageError``, count the reason and move on, and a command that
cannot go on ends with one line naming the file.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from modalink.errors import FileFormatError

__all__ = ["ImageError", "MissingImageError", "UnreadableImageError", "SymlinkLoopError", "image_error", "read_image",
           "verify_image"]


class ImageError(FileFormatError):
    """An image file that cannot be used. ``reason`` is a short tag for counting."""

    reason = "bad_image"


class MissingImageError(ImageError, FileNotFoundError):
    """The file (or the file a link points to) does not exist."""

    reason = "missing_image"


class UnreadableImageError(ImageError):
    """The file exists but does not decode as an image (corrupt, truncated, not an image, too big)."""

    reason = "unreadable_image"


class SymlinkLoopError(ImageError):
    """The path is a link that points back to itself."""

    reason = "symlink_loop"


def image_error(path: str | os.PathLike, reason: str, detail: str) -> ImageError:
    """The :class:`ImageError` subclass of a ``reason`` tag (a plain :class:`ImageError` for
    another tag), naming ``path``: a problem reported as a tag raised again as the error."""
    for cls in (MissingImageError, UnreadableImageError, SymlinkLoopError):
        if cls.reason == reason:
            return cls(path, detail)
    err = ImageError(path, detail)
    err.reason = reason or ImageError.reason
    return err


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _open(path: str | os.PathLike) -> Any:
    from PIL import Image

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise MissingImageError(path, "file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkLoopError(path, "a symbolic link that points back to itself") from None
        if exc.errno in (errno.EISDIR, errno.EACCES, errno.EPERM):
            raise UnreadableImageError(path, f"cannot open it ({exc.strerror})") from None
        raise UnreadableImageError(path, f"cannot decode the image ({_short(exc)})") from None


def read_image(path: str | os.PathLike) -> Any:
    """Decode an image file to an RGB ``PIL.Image``; an unusable file raises an :class:`ImageError`
    subclass naming it (never a bare PIL error)."""
    from PIL import Image, UnidentifiedImageError

    im = _open(path)
    try:
        with im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(path, f"cannot decode the image ({_short(exc)})") from None


def verify_image(path: str | os.PathLike) -> None:
    """Check that ``path`` is a readable image without decoding its pixels (fast, for scanning a
    dataset); raises an :class:`ImageError` subclass like :func:`read_image`."""
    from PIL import Image

    if Path(path).is_dir():
        raise UnreadableImageError(path, "a folder, not an image file")
    im = _open(path)
    try:
        with im:
            im.verify()
    except Exception as exc:  # noqa: BLE001 - PIL's verify raises many types for a bad file
        if isinstance(exc, Image.DecompressionBombError):
            raise UnreadableImageError(path, f"cannot decode the image ({_short(exc)})") from None
        raise UnreadableImageError(path, f"cannot decode the image ({type(exc).__name__}: {_short(exc)})") from None
