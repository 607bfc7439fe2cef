"""The one embedding-extraction-and-cache pipeline: validated, resumable, incremental caches of
pre-extracted embeddings, shared by FAME's ``prepare.py``, the classification methods on
features (SRMM, late fusion) and the recommendation catalogue's item media.

Layout under a cache folder::

    <cache>/<split>_<modality>.npy        (count, dim) float32, rows in the caller's order
    <cache>/<split>_<modality>.json       manifest: encoder config, count, shape, source hash,
                                          content digest, per-row problems
    <cache>/<split>_<modality>.rows.json  the rows' identities (when the caller gives them)
    <cache>/.shards/<split>_<modality>-<fingerprint>/shard_000000.npy (+ .json)  while extracting

A cache is valid only when its manifest names the same encoder config, the same source hash
and the same count, and the array on disk has the recorded shape and content digest. Anything
else is *stale* and is rebuilt:

* **resumable** — extraction writes fixed-size shards as it goes; an interrupted build resumes
  from the shards already on disk (only shards made for the same fingerprint are reused);
* **incremental** — when the caller names each row (:attr:`CacheKey.row_ids`, e.g. a file's
  path, size, mtime and content digest: :func:`file_row_ids`), a rebuild copies every row
  whose identity the previous cache of the same encoder already holds and only encodes the new
  ones (rows that failed before are encoded again only with ``retry_failed``);
* **per-row problems** — an encoder may return :class:`EncodedRows` naming rows that failed
  (their row is zeros) or were embedded through a fallback; they are kept in the manifest and
  read back with :meth:`EmbeddingCache.problems`.

Every file is written atomically (temp file + rename).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from modalink.errors import UserError
from modalink.io import atomic_path, atomic_write_text, file_digest
from modalink.progress import progress_bar

__all__ = ["CacheKey", "EmbeddingCache", "CacheError", "EncodedRows", "RowProblem", "file_list_hash",
           "file_row_id", "file_row_ids", "text_row_ids", "texts_hash"]

MANIFEST_VERSION = 2
log = logging.getLogger("modalink.data.embedding_cache")


class CacheError(UserError, RuntimeError):
    """An embedding cache that cannot be read or built (names the file)."""


# ----------------------------------------------------------------------------- source identities
def file_row_id(path: str | os.PathLike, root: str | os.PathLike, *, content: bool = True) -> str:
    """The identity of one file: ``path relative to root, size, mtime_ns`` and, with ``content``,
    a BLAKE2b digest of its bytes (:func:`modalink.io.file_digest`), so a file rewritten in place
    with the same size and mtime gets another identity.

    ``path`` is read exactly as ``open()`` reads it: absolute, or relative to the current working
    directory — the same file the encoder opens. ``root`` only names the file (its path relative
    to it), so the identity is the same whether ``root`` and ``path`` are given relative or
    absolute, and from any working directory. A file that cannot be read raises the ``OSError``
    (``FileNotFoundError`` naming a missing file).
    """
    full = Path(path).expanduser()
    try:
        st = full.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"source file listed for the embedding cache is missing: {full}") from None
    absolute = Path(os.path.abspath(full))
    try:
        rel = absolute.relative_to(os.path.abspath(Path(root).expanduser())).as_posix()
    except ValueError:
        rel = absolute.as_posix()
    row = f"{rel}\t{st.st_size}\t{st.st_mtime_ns}"
    return f"{row}\t{file_digest(full)}" if content else row


def file_row_ids(paths: Iterable[str | os.PathLike], root: str | os.PathLike, *,
                 content: bool = True) -> list[str]:
    """:func:`file_row_id` of each path, in the given order (``content=False``: size and mtime
    only, without reading the files)."""
    return [file_row_id(p, root, content=content) for p in paths]


def file_list_hash(paths: Iterable[str | os.PathLike], root: str | os.PathLike, *,
                   ordered: bool = False) -> str:
    """SHA-256 of the stat identities (path, size, mtime; :func:`file_row_ids` with
    ``content=False``) of ``paths``; sorted unless ``ordered`` (then the given order is part of
    the hash, so a cache whose rows follow that order goes stale when it changes)."""
    rows = file_row_ids(paths, root, content=False)
    if not ordered:
        rows.sort()
    return _ids_hash(rows)


def text_row_ids(texts: Sequence[str | None]) -> list[str]:
    """One identity per text: a digest of its content (``None`` distinct from the empty string)."""
    return ["-" if t is None else hashlib.blake2b(t.encode("utf-8"), digest_size=12).hexdigest() for t in texts]


def _ids_hash(ids: Iterable[str]) -> str:
    h = hashlib.sha256()
    for r in ids:
        h.update(r.encode("utf-8", "surrogateescape") + b"\n")  # a file name that is not UTF-8 too
    return h.hexdigest()


def texts_hash(texts: Sequence[str | None]) -> str:
    """SHA-256 of an ordered list of texts (``None`` distinct from the empty string)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(b"\x00" if t is None else b"\x01" + t.encode("utf-8") + b"\x02")
    return h.hexdigest()


# ----------------------------------------------------------------------------- keys and rows
@dataclass
class CacheKey:
    """What a cache must match: ``split``/``modality`` name the files; ``encoder`` is the
    encoder's JSON-safe config; ``source_hash`` identifies the inputs; ``count`` the rows.

    ``row_ids`` (optional, one string per row) name each row's input so that a rebuild can copy
    the rows an earlier cache of the same encoder already holds; :meth:`for_rows` derives
    ``source_hash`` and ``count`` from them."""

    split: str
    modality: str
    encoder: dict[str, Any]
    source_hash: str
    count: int
    extra: dict[str, Any] = field(default_factory=dict)
    row_ids: Sequence[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def for_rows(cls, split: str, modality: str, encoder: dict[str, Any], row_ids: Sequence[str],
                 extra: dict[str, Any] | None = None) -> "CacheKey":
        """A key whose source is exactly the ordered ``row_ids``."""
        ids = list(row_ids)
        return cls(split, modality, encoder, _ids_hash(ids), len(ids), dict(extra or {}), ids)

    def encoder_fingerprint(self) -> str:
        """Hash of what decides a row's embedding given its input (encoder and settings)."""
        blob = json.dumps({"encoder": self.encoder, "extra": self.extra}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def fingerprint(self) -> str:
        """Short hash of everything that decides the array's content."""
        blob = json.dumps({"encoder": self.encoder, "source_hash": self.source_hash, "count": self.count,
                           "extra": self.extra}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.split}_{self.modality}"


@dataclass(frozen=True)
class RowProblem:
    """Why a row is not a plain embedding of its input: ``embedded=False`` — it failed and the
    row is zeros; ``embedded=True`` — it was embedded through a fallback (e.g. ``no_face``)."""

    problem: str
    detail: str = ""
    embedded: bool = False

    def to_json(self) -> list[Any]:
        return [self.problem, self.detail, self.embedded]

    @classmethod
    def from_json(cls, value: Any) -> "RowProblem":
        problem, detail, embedded = value
        return cls(str(problem), str(detail), bool(embedded))


@dataclass
class EncodedRows:
    """What an encoder callback may return instead of a bare array: the rows' embeddings
    (failed rows zeros) and the problems of some rows, keyed by their row index in the cache."""

    embeddings: np.ndarray
    problems: dict[int, RowProblem] = field(default_factory=dict)


#: ``encode(rows)`` gets the cache row indices to embed (ascending) and returns their embeddings
Encode = Callable[[np.ndarray], Union[np.ndarray, EncodedRows]]


def _problems_from_json(data: Mapping[str, Any]) -> dict[int, RowProblem]:
    return {int(k): RowProblem.from_json(v) for k, v in data.items()}


def _problems_to_json(problems: Mapping[int, RowProblem]) -> dict[str, Any]:
    return {str(k): p.to_json() for k, p in sorted(problems.items())}


# ----------------------------------------------------------------------------- cache
class EmbeddingCache:
    """Embeddings under ``root``: :meth:`check`, :meth:`load`, :meth:`problems`, :meth:`build`,
    :meth:`get_or_build`."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def array_path(self, key: CacheKey) -> Path:
        return self.root / f"{key.stem}.npy"

    def manifest_path(self, key: CacheKey) -> Path:
        return self.root / f"{key.stem}.json"

    def rows_path(self, key: CacheKey) -> Path:
        return self.root / f"{key.stem}.rows.json"

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

    def _array_reason(self, key: CacheKey, man: Mapping[str, Any]) -> str | None:
        """Why the array on disk does not match ``man`` (``None``: it does)."""
        arr_path = self.array_path(key)
        if not arr_path.is_file():
            return f"array {arr_path.name} is missing"
        try:
            arr = np.load(arr_path, mmap_mode="r")
        except (ValueError, OSError) as e:
            return f"array {arr_path.name} is unreadable ({e})"
        if arr.dtype != np.float32 or arr.ndim != 2:
            return f"array {arr_path.name} has dtype {arr.dtype} and {arr.ndim} dims, expected float32 2-D"
        if list(arr.shape) != list(man.get("shape", [])):
            return f"array {arr_path.name} has shape {tuple(arr.shape)}, manifest says {man.get('shape')}"
        if man.get("digest") != file_digest(arr_path):
            return f"array {arr_path.name} was changed after it was written (content digest differs)"
        return None

    def check(self, key: CacheKey) -> str | None:
        """``None`` when the cache matches ``key``; else the reason it is stale or missing."""
        try:
            man = self.read_manifest(key)
        except CacheError as e:
            return str(e)
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
        return self._array_reason(key, man)

    def load(self, key: CacheKey, mmap: bool = False) -> np.ndarray:
        """The validated array; raises :class:`CacheError` with the reason when stale."""
        reason = self.check(key)
        if reason is not None:
            raise CacheError(f"embedding cache {self.array_path(key)} is not valid: {reason}")
        return np.load(self.array_path(key), mmap_mode="r" if mmap else None)

    def problems(self, key: CacheKey) -> dict[int, RowProblem]:
        """Rows of the (valid) cache that failed or were embedded through a fallback."""
        man = self.read_manifest(key)
        if man is None or man.get("fingerprint") != key.fingerprint():
            raise CacheError(f"embedding cache {self.manifest_path(key)} does not hold this source; build it first")
        return _problems_from_json(man.get("problems", {}))

    # -- row reuse ----------------------------------------------------------------------
    def _reusable(self, key: CacheKey, retry_failed: bool) -> tuple[dict[int, int], np.ndarray | None,
                                                                     dict[int, RowProblem]]:
        """``(new row → old row, old array, old problems)`` from a valid earlier cache of the same
        encoder under this stem; empty when there is none or ``key`` has no row ids."""
        if key.row_ids is None:
            return {}, None, {}
        try:
            man = self.read_manifest(key)
        except CacheError:
            return {}, None, {}
        if (man is None or man.get("version") != MANIFEST_VERSION
                or man.get("encoder_fingerprint") != key.encoder_fingerprint()
                or self._array_reason(key, man) is not None or not self.rows_path(key).is_file()):
            return {}, None, {}
        try:
            old_ids = json.loads(self.rows_path(key).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {}, None, {}
        if not isinstance(old_ids, list) or len(old_ids) != man.get("count") or \
                man.get("rows_digest") != _ids_hash(str(i) for i in old_ids):
            return {}, None, {}
        old_problems = _problems_from_json(man.get("problems", {}))
        where = {rid: i for i, rid in enumerate(old_ids)}
        mapping = {}
        for new, rid in enumerate(key.row_ids):
            old = where.get(rid)
            if old is None:
                continue
            if retry_failed and old in old_problems and not old_problems[old].embedded:
                continue
            mapping[new] = old
        return mapping, np.load(self.array_path(key), mmap_mode="r"), old_problems

    # -- building -----------------------------------------------------------------------
    def build(self, key: CacheKey, encode: Encode, *, shard_size: int = 1024, progress: bool = True,
              desc: str | None = None, retry_failed: bool = False) -> np.ndarray:
        """Fill rows ``[0, count)``: rows an earlier cache of the same encoder holds (same row id)
        are copied, the others embedded with ``encode(rows)`` a shard of ``shard_size`` rows at a
        time, resuming from shards already on disk; then the array, row ids and manifest are
        written. Returns the array."""
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        if key.count <= 0:
            raise CacheError(f"embedding cache {key.stem}: nothing to extract (count={key.count})")
        if key.row_ids is not None and len(key.row_ids) != key.count:
            raise ValueError(f"{key.stem}: {len(key.row_ids)} row ids for {key.count} rows")
        sdir = self.shard_dir(key)
        parent = sdir.parent
        if parent.is_dir():  # shards made for another fingerprint of this split/modality are stale
            for other in parent.glob(f"{key.stem}-*"):
                if other != sdir:
                    shutil.rmtree(other, ignore_errors=True)
        reuse, old_arr, old_problems = self._reusable(key, retry_failed)
        sdir.mkdir(parents=True, exist_ok=True)
        bounds = [(s, min(s + shard_size, key.count)) for s in range(0, key.count, shard_size)]
        done, dim = self._done_shards(sdir, bounds)
        if old_arr is not None and reuse:
            if dim is not None and old_arr.shape[1] != dim:
                reuse = {}
            else:
                dim = old_arr.shape[1]
        rows_done = sum(b - a for i, (a, b) in enumerate(bounds) if i in done)
        if done:
            log.info("%s: resuming, %d/%d shards already extracted", key.stem, len(done), len(bounds))
        if reuse:
            log.info("%s: %d of %d rows copied from the earlier cache of this encoder", key.stem, len(reuse),
                     key.count)
        stats = {"copied": 0, "encoded": 0, "resumed": rows_done}
        bar = progress_bar(total=key.count, initial=rows_done, desc=desc or f"extract {key.stem}", unit="item",
                           enabled=progress, leave=False)
        try:
            for i, (a, b) in enumerate(bounds):
                if i in done:
                    continue
                emb, probs, dim = self._fill_shard(key, encode, a, b, dim, reuse, old_arr, old_problems, stats)
                self._write_shard(sdir, i, emb, probs)
                bar.update(b - a)
        finally:
            bar.close()
        assert dim is not None
        return self._assemble(key, sdir, bounds, dim, shard_size, stats)

    def _fill_shard(self, key: CacheKey, encode: Encode, a: int, b: int, dim: int | None,
                    reuse: Mapping[int, int], old_arr: np.ndarray | None, old_problems: Mapping[int, RowProblem],
                    stats: dict[str, int]) -> tuple[np.ndarray, dict[int, RowProblem], int]:
        rows = np.arange(a, b)
        todo = np.array([r for r in rows if r not in reuse], dtype=np.int64)
        probs: dict[int, RowProblem] = {}
        fresh = None
        if len(todo):
            out = encode(todo)
            fresh_probs = out.problems if isinstance(out, EncodedRows) else {}
            fresh = np.asarray(out.embeddings if isinstance(out, EncodedRows) else out, dtype=np.float32)
            what = f"rows {a}:{b}" if len(todo) == b - a else f"{len(todo)} rows of {a}:{b}"
            if fresh.ndim != 2 or fresh.shape[0] != len(todo):
                raise CacheError(f"{key.stem}: encoder returned shape {fresh.shape} for {what}, "
                                 f"expected ({len(todo)}, dim)")
            if dim is not None and fresh.shape[1] != dim:
                raise CacheError(f"{key.stem}: encoder returned width {fresh.shape[1]}, other rows have {dim}")
            if not np.isfinite(fresh).all():
                raise CacheError(f"{key.stem}: encoder returned non-finite values for {what}")
            stray = sorted(set(fresh_probs) - set(todo.tolist()))
            if stray:
                raise CacheError(f"{key.stem}: encoder reported problems for rows {stray[:5]} it was not asked for")
            dim = fresh.shape[1]
            probs.update(fresh_probs)
            stats["encoded"] += len(todo)
        assert dim is not None
        if len(todo) == b - a:
            assert fresh is not None
            return fresh, probs, dim
        emb = np.empty((b - a, dim), dtype=np.float32)
        if fresh is not None:
            emb[todo - a] = fresh
        assert old_arr is not None
        for r in rows:
            old = reuse.get(int(r))
            if old is not None:
                emb[r - a] = old_arr[old]
                if old in old_problems:
                    probs[int(r)] = old_problems[old]
                stats["copied"] += 1
        return emb, probs, dim

    @staticmethod
    def _write_shard(sdir: Path, i: int, emb: np.ndarray, probs: Mapping[int, RowProblem]) -> None:
        # the problems first: a shard counts as done only when its .npy exists
        atomic_write_text(sdir / f"shard_{i:06d}.json", json.dumps(_problems_to_json(probs)))
        with atomic_path(sdir / f"shard_{i:06d}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, emb)

    def _assemble(self, key: CacheKey, sdir: Path, bounds: list[tuple[int, int]], dim: int, shard_size: int,
                  stats: Mapping[str, int]) -> np.ndarray:
        arr_path = self.array_path(key)
        problems: dict[int, RowProblem] = {}
        with atomic_path(arr_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(key.count, dim))
            for i, (a, b) in enumerate(bounds):
                out[a:b] = np.load(sdir / f"shard_{i:06d}.npy")
                problems.update(_problems_from_json(json.loads((sdir / f"shard_{i:06d}.json").read_text())))
            out.flush()
            del out
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION, "split": key.split, "modality": key.modality, "encoder": key.encoder,
            "source_hash": key.source_hash, "count": key.count, "extra": key.extra, "shape": [key.count, dim],
            "dtype": "float32", "digest": file_digest(arr_path), "fingerprint": key.fingerprint(),
            "encoder_fingerprint": key.encoder_fingerprint(), "shard_size": shard_size,
            "problems": _problems_to_json(problems), "last_build": dict(stats)}
        if key.row_ids is not None:
            ids = [str(r) for r in key.row_ids]
            atomic_write_text(self.rows_path(key), json.dumps(ids))
            manifest["rows_digest"] = _ids_hash(ids)
        else:
            self.rows_path(key).unlink(missing_ok=True)
        atomic_write_text(self.manifest_path(key), json.dumps(manifest, indent=1, sort_keys=True, default=str))
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
            p, side = sdir / f"shard_{i:06d}.npy", sdir / f"shard_{i:06d}.json"
            if not p.is_file():
                continue
            try:
                arr = np.load(p, mmap_mode="r")
                json.loads(side.read_text(encoding="utf-8"))
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

    def get_or_build(self, key: CacheKey, encode: Encode, *, shard_size: int = 1024, progress: bool = True,
                     force: bool = False, desc: str | None = None, mmap: bool = False,
                     retry_failed: bool = False) -> tuple[np.ndarray, bool]:
        """``(array, built)``: the cached array when valid, else a fresh build (``built=True``).

        ``force`` re-encodes every row; ``retry_failed`` re-encodes the rows that failed before
        (the others are copied)."""
        reason = "rebuild forced" if force else self.check(key)
        if reason is None and retry_failed and any(not p.embedded for p in self.problems(key).values()):
            reason = "retrying the rows that failed"
        if reason is None:
            log.info("%s: cache is valid (%s)", key.stem, self.array_path(key))
            return np.load(self.array_path(key), mmap_mode="r" if mmap else None), False
        log.info("%s: building embedding cache (%s)", key.stem, reason)
        if force:  # nothing of an earlier cache or an interrupted build is reused
            self.manifest_path(key).unlink(missing_ok=True)
            shutil.rmtree(self.shard_dir(key), ignore_errors=True)
        arr = self.build(key, encode, shard_size=shard_size, progress=progress, desc=desc,
                         retry_failed=retry_failed)
        return (np.load(self.array_path(key), mmap_mode="r") if mmap else arr), True
