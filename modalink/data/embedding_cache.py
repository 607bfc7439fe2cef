"""Validated, resumable caches of pre-extracted embeddings.

Layout under a cache folder::

    <cache>/<split>_<modality>.npy      (count, dim) float32, rows in dataset order
    <cache>/<split>_<modality>.json     manifest: encoder config, count, shape, source hash
    <cache>/.shards/<split>_<modality>-<fingerprint>/shard_000000.npy   (while extracting)

A cache is valid only when its manifest names the same encoder config, the same source hash
(:func:`file_list_hash` / :func:`bytes_hash` of the inputs) and the same count, and the array on
disk has the recorded shape and dtype. Anything else is *stale* and is rebuilt. Extraction
writes fixed-size shards as it goes; an interrupted build resumes from the shards already on
disk (only shards made for the same fingerprint are reused). Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from modalink.errors import UserError
from modalink.io import atomic_path, atomic_write_text
from modalink.progress import progress_bar

__all__ = ["CacheKey", "EmbeddingCache", "CacheError", "file_list_hash", "bytes_hash", "texts_hash"]

MANIFEST_VERSION = 1
log = logging.getLogger("modalink.data.embedding_cache")


class CacheError(UserError, RuntimeError):
    """An embedding cache that cannot be read or built (names the file)."""


# ----------------------------------------------------------------------------- source hashes
def file_list_hash(paths: Iterable[str | os.PathLike], root: str | os.PathLike, *,
                   ordered: bool = False) -> str:
    """SHA-256 of the list of ``(path relative to root, size, mtime_ns)`` of ``paths``.

    Each path is read exactly as ``open()`` reads it: absolute, or relative to the current
    working directory — the same file the encoder opens. ``root`` only names the files in the
    hash (their path relative to it), so the hash is the same whether ``root`` and the paths are
    given relative or absolute, and from any working directory. (Joining ``root`` to a path that
    already starts with a relative ``root`` was the bug that made the SRMM quick start look for
    ``runs/srmm/synthetic_food101/runs/srmm/synthetic_food101/images/...``.)

    The list is sorted unless ``ordered`` (then the given order is part of the hash, so a cache
    whose rows follow that order goes stale when the order changes). A missing file raises
    ``FileNotFoundError`` naming it.
    """
    root_abs = Path(os.path.abspath(Path(root).expanduser()))
    rows = []
    for p in paths:
        full = Path(p).expanduser()
        try:
            st = full.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"source file listed for the embedding cache is missing: {full}") from None
        absolute = Path(os.path.abspath(full))
        try:
            rel = absolute.relative_to(root_abs).as_posix()
        except ValueError:
            rel = absolute.as_posix()
        rows.append((rel, st.st_size, st.st_mtime_ns))
    if not ordered:
        rows.sort()
    h = hashlib.sha256()
    for rel, size, mtime in rows:
        h.update(f"{rel}\t{size}\t{mtime}\n".encode("utf-8"))
    return h.hexdigest()


def bytes_hash(*parts: bytes | str | os.PathLike) -> str:
    """SHA-256 over byte strings and/or the contents of files (``Path`` arguments)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            data = bytes(part)
        elif isinstance(part, str):
            data = part.encode("utf-8")
        else:
            data = Path(part).read_bytes()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def texts_hash(texts: Sequence[str | None]) -> str:
    """SHA-256 of an ordered list of texts (``None`` distinct from the empty string)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(b"\x00" if t is None else b"\x01" + t.encode("utf-8") + b"\x02")
    return h.hexdigest()


# ----------------------------------------------------------------------------- cache
@dataclass
class CacheKey:
    """What a cache must match: ``split``/``modality`` name the files; ``encoder`` is the
    encoder's JSON-safe config; ``source_hash`` identifies the inputs; ``count`` the rows."""

    split: str
    modality: str
    encoder: dict[str, Any]
    source_hash: str
    count: int
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Short hash of everything that decides the array's content."""
        blob = json.dumps({"encoder": self.encoder, "source_hash": self.source_hash, "count": self.count,
                           "extra": self.extra}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.split}_{self.modality}"


class EmbeddingCache:
    """Embeddings under ``root``: :meth:`check`, :meth:`load`, :meth:`build`, :meth:`get_or_build`."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def array_path(self, key: CacheKey) -> Path:
        return self.root / f"{key.stem}.npy"

    def manifest_path(self, key: CacheKey) -> Path:
        return self.root / f"{key.stem}.json"

    def shard_dir(self, key: CacheKey) -> Path:
        return self.root / ".shards" / f"{key.stem}-{key.fingerprint()}"

    # -- validation ---------------------------------------------------------------------
    def read_manifest(self, key: CacheKey) -> dict[str, Any] | None:
        """The manifest as a dict, ``None`` when absent; a corrupt one raises naming the file."""
        path = self.manifest_path(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CacheError(f"{path}: corrupt embedding-cache manifest ({e})") from None
        if not isinstance(data, dict):
            raise CacheError(f"{path}: manifest must be a JSON object")
        return data

    def check(self, key: CacheKey) -> str | None:
        """``None`` when the cache matches ``key``; else the reason it is stale or missing."""
        try:
            man = self.read_manifest(key)
        except CacheError as e:
            return str(e)
        arr_path = self.array_path(key)
        if man is None:
            return f"no manifest {self.manifest_path(key).name}"
        if man.get("version") != MANIFEST_VERSION:
            return f"manifest version {man.get('version')!r} != {MANIFEST_VERSION}"
        if man.get("encoder") != json.loads(json.dumps(key.encoder, default=str)):
            return f"encoder changed ({man.get('encoder')} -> {key.encoder})"
        if man.get("source_hash") != key.source_hash:
            return "source data changed (source hash differs)"
        if man.get("count") != key.count:
            return f"count changed ({man.get('count')} -> {key.count})"
        if man.get("extra", {}) != json.loads(json.dumps(key.extra, default=str)):
            return "extraction settings changed"
        if not arr_path.is_file():
            return f"array {arr_path.name} is missing"
        try:
            arr = np.load(arr_path, mmap_mode="r")
        except (ValueError, OSError) as e:
            return f"array {arr_path.name} is unreadable ({e})"
        if arr.dtype != np.float32 or arr.ndim != 2:
            return f"array {arr_path.name} has dtype {arr.dtype} and {arr.ndim} dims, expected float32 2-D"
        if list(arr.shape) != list(man.get("shape", [])) or arr.shape[0] != key.count:
            return f"array {arr_path.name} has shape {tuple(arr.shape)}, manifest says {man.get('shape')}"
        return None

    def load(self, key: CacheKey, mmap: bool = False) -> np.ndarray:
        """The validated array; raises :class:`CacheError` with the reason when stale."""
        reason = self.check(key)
        if reason is not None:
            raise CacheError(f"embedding cache {self.array_path(key)} is not valid: {reason}")
        return np.load(self.array_path(key), mmap_mode="r" if mmap else None)

    # -- building -----------------------------------------------------------------------
    def build(self, key: CacheKey, encode: Callable[[int, int], np.ndarray], *, shard_size: int = 1024,
              progress: bool = True, desc: str | None = None) -> np.ndarray:
        """Extract rows ``[0, count)`` with ``encode(start, stop) -> (stop-start, dim)`` in shards of
        ``shard_size`` rows, resuming from shards already on disk, then write the array and manifest."""
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        if key.count <= 0:
            raise CacheError(f"embedding cache {key.stem}: nothing to extract (count={key.count})")
        sdir = self.shard_dir(key)
        parent = sdir.parent
        if parent.is_dir():  # shards made for another fingerprint of this split/modality are stale
            for other in parent.glob(f"{key.stem}-*"):
                if other != sdir:
                    shutil.rmtree(other, ignore_errors=True)
        sdir.mkdir(parents=True, exist_ok=True)
        bounds = [(s, min(s + shard_size, key.count)) for s in range(0, key.count, shard_size)]
        done, dim = self._done_shards(sdir, bounds)
        rows_done = sum(b - a for i, (a, b) in enumerate(bounds) if i in done)
        if done:
            log.info("%s: resuming, %d/%d shards already extracted", key.stem, len(done), len(bounds))
        bar = progress_bar(total=key.count, initial=rows_done, desc=desc or f"extract {key.stem}", unit="item",
                   enabled=progress, leave=False)
        try:
            for i, (a, b) in enumerate(bounds):
                if i in done:
                    continue
                emb = np.asarray(encode(a, b), dtype=np.float32)
                if emb.ndim != 2 or emb.shape[0] != b - a:
                    raise CacheError(f"{key.stem}: encoder returned shape {emb.shape} for rows {a}:{b}, "
                                     f"expected ({b - a}, dim)")
                if dim is not None and emb.shape[1] != dim:
                    raise CacheError(f"{key.stem}: encoder returned width {emb.shape[1]}, earlier shards "
                                     f"have {dim}")
                if not np.isfinite(emb).all():
                    raise CacheError(f"{key.stem}: encoder returned non-finite values for rows {a}:{b}")
                dim = emb.shape[1]
                with atomic_path(sdir / f"shard_{i:06d}.npy") as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, emb)
                bar.update(b - a)
        finally:
            bar.close()
        assert dim is not None
        arr_path = self.array_path(key)
        with atomic_path(arr_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(key.count, dim))
            for i, (a, b) in enumerate(bounds):
                out[a:b] = np.load(sdir / f"shard_{i:06d}.npy")
            out.flush()
            del out
        manifest = {"version": MANIFEST_VERSION, **asdict(key), "shape": [key.count, dim], "dtype": "float32",
                    "fingerprint": key.fingerprint(), "shard_size": shard_size}
        atomic_write_text(self.manifest_path(key), json.dumps(manifest, indent=2, sort_keys=True, default=str))
        shutil.rmtree(sdir, ignore_errors=True)
        with_shards = self.root / ".shards"
        if with_shards.is_dir() and not any(with_shards.iterdir()):
            with_shards.rmdir()
        return np.load(arr_path)

    @staticmethod
    def _done_shards(sdir: Path, bounds: list[tuple[int, int]]) -> tuple[set[int], int | None]:
        done: set[int] = set()
        dim: int | None = None
        for i, (a, b) in enumerate(bounds):
            p = sdir / f"shard_{i:06d}.npy"
            if not p.is_file():
                continue
            try:
                arr = np.load(p, mmap_mode="r")
            except (ValueError, OSError):
                p.unlink(missing_ok=True)
                continue
            if arr.ndim != 2 or arr.shape[0] != b - a or arr.dtype != np.float32 or (dim is not None
                                                                                       and arr.shape[1] != dim):
                p.unlink(missing_ok=True)
                continue
            dim = arr.shape[1]
            done.add(i)
        return done, dim

    def get_or_build(self, key: CacheKey, encode: Callable[[int, int], np.ndarray], *, shard_size: int = 1024,
                     progress: bool = True, force: bool = False, desc: str | None = None,
                     mmap: bool = False) -> tuple[np.ndarray, bool]:
        """``(array, built)``: the cached array when valid, else a fresh build (``built=True``)."""
        reason = "rebuild forced" if force else self.check(key)
        if reason is None:
            log.info("%s: cache is valid (%s)", key.stem, self.array_path(key))
            return self.load(key, mmap=mmap), False
        log.info("%s: building embedding cache (%s)", key.stem, reason)
        arr = self.build(key, encode, shard_size=shard_size, progress=progress, desc=desc)
        return (np.load(self.array_path(key), mmap_mode="r") if mmap else arr), True
