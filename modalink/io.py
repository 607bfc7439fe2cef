"""Atomic file output: every file modalink writes appears whole or not at all.

* Files appear under their final name only once complete (temp file in the same folder +
  ``fsync`` + rename); a failure removes the temp file and leaves the old file untouched.
* Files get the permissions a plain ``open()`` would give (``0666 & ~umask``), not the
  ``0600`` of ``mkstemp``: results on a shared machine stay readable by the group.
* A full disk is reported as :class:`DiskFullError` naming the file, whatever layer noticed it
  (``OSError(ENOSPC)``, or torch's ``RuntimeError`` from its zip writer).
* :func:`load_torch_weights` is the one way modalink reads a torch file it may have received
  from elsewhere: ``weights_only=True``, so a pickle that would run code is refused.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from modalink.errors import UserError


class DiskFullError(UserError, OSError):
    """No space left on the device while writing a file."""


class UnsafeFileError(UserError):
    """A file that would run code when loaded (a pickle with arbitrary objects)."""


class DamagedFileError(UserError):
    """A file that exists but cannot be read (truncated, corrupt, wrong format)."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()
_DIR_MODE = 0o777 & ~_current_umask()


def _disk_full(path: str | os.PathLike, exc: BaseException) -> DiskFullError:
    return DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}; free some space "
                         "(or choose another --output-dir) and run again")


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a failed write as "unexpected pos" / "file write failed"
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("unexpected pos" in text or "file write failed" in text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    except OSError as exc:
        if _is_disk_full(exc):
            raise _disk_full(path, exc) from exc
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, _FILE_MODE)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if _is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise _disk_full(path, exc) from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically, so a crash never leaves a truncated checkpoint."""
    import io

    import torch  # lazy: modalink.io is also used by torch-free tools (challenge)

    # through a buffer: torch names the archive after the file it writes to, and the temp name
    # is random; a buffer gives the same bytes for the same object
    buf = io.BytesIO()
    try:
        torch.save(obj, buf)
    except BaseException as exc:
        if _is_disk_full(exc):
            raise _disk_full(path, exc) from exc
        raise
    return atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` (an existing one is removed).

    A full disk while the folder is written is :class:`DiskFullError` naming the file being
    written when the error says which (else ``path``); ``path`` is left untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        if _is_disk_full(exc):
            raise _disk_full(path, exc) from exc
        raise
    os.chmod(tmp, _DIR_MODE)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old.tmp")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(exc) and not isinstance(exc, DiskFullError):
            where = getattr(exc, "filename", None)
            if where is not None and Path(where).parent == tmp:
                where = path / Path(where).name  # the staged file under its final name
            raise _disk_full(where or path, exc) from exc
        raise


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON file holding one object; :class:`~modalink.errors.FileFormatError` naming the file
    when it is not valid JSON or not an object."""
    import json

    from modalink.errors import FileFormatError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FileFormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FileFormatError(path, "expected a JSON object")
    return data


def foreign_entries(folder: str | os.PathLike, own: Iterable[str]) -> list[str]:
    """Sorted names in ``folder`` that are not in ``own`` (what modalink wrote there) and are not the
    temporary files of an atomic write: the rule every "replace this folder" check follows before
    it deletes anything. A folder that does not exist has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    own = set(own)
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in own and not (p.name.startswith(".") and p.name.endswith(".tmp")))


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the ``.<name>.*.tmp`` files/folders a killed writer left in ``folder``.

    Call it only while holding the folder's lock (no live writer can own them)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = "**/.*.tmp" if recursive else ".*.tmp"
    removed = []
    for p in sorted(folder.glob(pattern), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed


def file_digest(path: str | os.PathLike, block: int = 1 << 23) -> str:
    """Hex BLAKE2b-128 digest of a file's bytes, read in 8 MiB blocks (the one content digest of
    modalink: feature caches, checkpoint manifests, data fingerprints)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(block)
            if not buf:
                break
            h.update(buf)
    return h.hexdigest()


def load_torch_weights(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """The one reader of torch files: ``torch.load(path, weights_only=True)`` (or a ``.safetensors``
    file) with errors that name the file.

    Tensors, numbers, strings and containers load; anything that would need arbitrary Python
    objects (and could run code while unpickling) is refused with :class:`UnsafeFileError`; a
    truncated or corrupt file raises :class:`DamagedFileError`.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, RuntimeError, ValueError) as exc:
            raise DamagedFileError(f"{what} {path} cannot be read ({str(exc).splitlines()[0][:200]})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln), first[0] if first else "")
        raise UnsafeFileError(
            f"refused to load {what} {path}: it holds Python objects beyond tensors and plain values, which "
            f"could run code when loaded ({detail[:200]}). Load only checkpoints you trust; re-save it as a "
            f"plain state dict (or safetensors) to use it") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.errno is not None:
            raise
        raise DamagedFileError(f"{what} {path} cannot be read ({str(exc).splitlines()[0][:200]}); the file is "
                               f"truncated or not a torch file") from None


def load_state_dict(path: str | os.PathLike, what: str = "weights") -> dict[str, Any]:
    """A state dict from a torch or ``.safetensors`` file (:func:`load_torch_weights`), unwrapped
    from a ``{"state_dict": ...}`` / ``{"model": ...}`` / ``{"model_state_dict": ...}`` container."""
    obj = load_torch_weights(path, what)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise DamagedFileError(f"{what} {path}: expected a state dict, found {type(obj).__name__}")
    return obj
