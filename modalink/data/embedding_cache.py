"""The one embedding-extraction-and-cache pipeline: validated, resumable, incremental caches of
pre-extracted embeddings, shared by FAME's ``prepare.py``, the classification methods on
features (SRMM, late fusion) and the recommendation catalogue's item media.

Layout under a cache folder::

    <cache>/<split>_<modality>.npy        (count, dim) float32, rows in the caller's order
    <cache>/<split>_<modality>.json       manifest: encoder config, count, shape, source hash,
                                          content digest, per-row problems
    <cache>/<split>_<modality>.rows.json  the rows' identities (when the caller gives them)
    <cache>/.shards/<split>_<modality>-<fingerprint>/part-<build>[-<process>]-<n>.npy (+ .json with
                                          its rows and their problems)  while extracting

A cache is valid only when its manifest names the same encoder config, the same source hash
and the same count, and the array on disk has the recorded shape and content digest. Anything
else is *stale* and is rebuilt:

* **resumable** — extraction writes shards of about ``shard_size`` rows as it goes, each naming
  its rows; an interrupted build resumes from the shards already on disk (only shards made for
  the same fingerprint are reused), whatever the shard size or process count was;
* **data-parallel** — under a launched job (:class:`~modalink.data.processes.Processes`) the
  rows to embed are split into one contiguous block per process, each process writes its own
  shards and the main process merges them into the cache one process would write;
* **streaming** — a streaming encoder is called once per build (one data loader) and yields
  its rows in any order (e.g. audio sorted by length) while the shards are cut;
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from modalink.data.processes import Processes
from modalink.errors import UserError, failpoint
from modalink.io import atomic_path, atomic_write_text, file_digest
from modalink.progress import progress_bar

__all__ = ["CacheKey", "EmbeddingCache", "CacheError", "EncodedRows", "RowProblem", "StreamEncode", "file_list_hash",
           "file_row_id", "file_row_ids", "text_row_ids", "texts_hash"]

MANIFEST_VERSION = 2
log = logging.getLogger(__name__)


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
#: a streaming ``encode(rows)`` yields ``(rows, embeddings)`` pieces covering every row once, in any order
StreamEncode = Callable[[np.ndarray], Iterable[tuple[np.ndarray, Union[np.ndarray, EncodedRows]]]]


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
    def build(self, key: CacheKey, encode: Encode | StreamEncode, *, shard_size: int = 1024, progress: bool = True,
              desc: str | None = None, retry_failed: bool = False, streaming: bool = False,
              processes: Processes | None = None) -> np.ndarray:
        """Fill rows ``[0, count)``: rows an earlier cache of the same encoder holds (same row id)
        are copied, the others embedded by ``encode``, resuming from the shards already on disk;
        then the array, row ids and manifest are written. Returns the array.

        ``encode(rows)`` gets the rows to embed, ``shard_size`` at a time; with ``streaming`` it
        is called once with all of them (one data loader for the whole build) and yields
        ``(rows, embeddings)`` pieces in any order, which are written in shards of about
        ``shard_size`` rows as they come. With ``processes`` (a launched job, every process
        calls this), the rows to embed are split into one contiguous block per process, each
        process writes its own shards, and the main process merges them into the same cache one
        process would write; every process returns the array."""
        procs = processes or Processes.single()
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        if key.count <= 0:
            raise CacheError(f"embedding cache {key.stem}: nothing to extract (count={key.count})")
        if key.row_ids is not None and len(key.row_ids) != key.count:
            raise ValueError(f"{key.stem}: {len(key.row_ids)} row ids for {key.count} rows")
        sdir = self.shard_dir(key)
        plan: _BuildPlan | None = None
        error = None
        if procs.is_main:
            try:
                plan = self._plan(key, sdir, retry_failed, procs.count)
            except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
                error = e
        self._agree(key, procs, error)
        todo = procs.broadcast(None if plan is None else plan.blocks)[procs.index]
        token = procs.broadcast(None if plan is None else plan.token)
        error, done = None, (0, None)
        try:
            done = self._encode_rows(key, encode, sdir, np.asarray(todo, dtype=np.int64), shard_size, streaming,
                                     token if not procs.distributed else f"{token}-{procs.index}",
                                     progress and procs.is_main, desc)
        except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
            error = e
        self._agree(key, procs, error)
        encoded = procs.gather(done)
        if procs.is_main:
            assert plan is not None
            try:
                self._assemble(key, sdir, plan, encoded, shard_size)
            except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
                error = e
        self._agree(key, procs, error)
        return np.load(self.array_path(key))

    @staticmethod
    def _agree(key: CacheKey, procs: Processes, error: BaseException | None) -> None:
        """Collective: raise ``error`` here, and a :class:`CacheError` naming it on every other
        process, when any process failed (so none waits for a peer that gave up)."""
        first = procs.first_error(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if first is not None:
            raise CacheError(f"embedding cache {key.stem}: another process of the job failed ({first})")

    def _plan(self, key: CacheKey, sdir: Path, retry_failed: bool, processes: int) -> "_BuildPlan":
        parent = sdir.parent
        if parent.is_dir():  # shards made for another fingerprint of this split/modality are stale
            for other in parent.glob(f"{key.stem}-*"):
                if other != sdir:
                    shutil.rmtree(other, ignore_errors=True)
        reuse, old_arr, old_problems = self._reusable(key, retry_failed)
        sdir.mkdir(parents=True, exist_ok=True)
        shards, dim = self._done_shards(sdir, key.count)
        if old_arr is not None and reuse and dim is not None and old_arr.shape[1] != dim:
            reuse = {}
        done = np.zeros(key.count, dtype=bool)
        for _, rows in shards:
            done[rows] = True
        for r in reuse:
            done[r] = True
        resumed = sum(len(rows) for _, rows in shards)
        if shards:
            log.info("%s: resuming, %d of %d rows already extracted", key.stem, resumed, key.count)
        if reuse:
            log.info("%s: %d of %d rows copied from the earlier cache of this encoder", key.stem, len(reuse),
                     key.count)
        todo = np.flatnonzero(~done)
        blocks = [b.tolist() for b in np.array_split(todo, processes)]
        if processes > 1 and len(todo):
            log.info("%s: %d rows to embed, split into %d blocks of %s rows (one per process)", key.stem, len(todo),
                     processes, "/".join(str(len(b)) for b in blocks))
        return _BuildPlan(blocks, f"{time.time_ns():x}", shards, dim, reuse, old_arr, old_problems, resumed)

    def _encode_rows(self, key: CacheKey, encode: Encode | StreamEncode, sdir: Path, todo: np.ndarray,
                     shard_size: int, streaming: bool, token: str, progress: bool,
                     desc: str | None) -> tuple[int, int | None]:
        """Embed ``todo`` into shard files ``part-<token>-<n>``; returns ``(rows, width)``."""
        if not len(todo):
            return 0, None
        pieces: Iterable[tuple[np.ndarray, Any]]
        if streaming:
            pieces = encode(todo)  # type: ignore[assignment]
        else:
            pieces = ((c, encode(c)) for c in np.array_split(todo, range(shard_size, len(todo), shard_size)))
        asked = set(todo.tolist())
        seen: set[int] = set()
        held: list[tuple[np.ndarray, np.ndarray]] = []
        held_probs: dict[int, RowProblem] = {}
        n_held, n_shards, dim = 0, 0, None
        bar = progress_bar(total=len(todo), desc=desc or f"extract {key.stem}", unit="item", enabled=progress,
                           leave=False)
        try:
            for rows, out in pieces:
                rows = np.asarray(rows, dtype=np.int64)
                emb, probs = self._check_piece(key, rows, out, dim, asked, seen)
                dim = emb.shape[1]
                held.append((rows, emb))
                held_probs.update(probs)
                n_held += len(rows)
                bar.update(len(rows))
                if n_held >= shard_size:
                    self._write_shard(sdir, f"part-{token}-{n_shards:06d}", held, held_probs)
                    held, held_probs, n_held, n_shards = [], {}, 0, n_shards + 1
            if held:
                self._write_shard(sdir, f"part-{token}-{n_shards:06d}", held, held_probs)
        finally:
            bar.close()
        missing = sorted(asked - seen)
        if missing:
            raise CacheError(f"{key.stem}: encoder returned no embedding for rows {missing[:5]}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return len(todo), dim

    @staticmethod
    def _check_piece(key: CacheKey, rows: np.ndarray, out: Any, dim: int | None, asked: set[int],
                     seen: set[int]) -> tuple[np.ndarray, dict[int, RowProblem]]:
        probs = dict(out.problems) if isinstance(out, EncodedRows) else {}
        emb = np.asarray(out.embeddings if isinstance(out, EncodedRows) else out, dtype=np.float32)
        what = f"rows {int(rows[0])}:{int(rows[-1]) + 1}" if len(rows) else "no rows"
        if emb.ndim != 2 or emb.shape[0] != len(rows):
            raise CacheError(f"{key.stem}: encoder returned shape {emb.shape} for {len(rows)} rows ({what}), "
                             f"expected ({len(rows)}, dim)")
        if dim is not None and emb.shape[1] != dim:
            raise CacheError(f"{key.stem}: encoder returned width {emb.shape[1]}, other rows have {dim}")
        if not np.isfinite(emb).all():
            raise CacheError(f"{key.stem}: encoder returned non-finite values for {what}")
        given = rows.tolist()
        wrong = sorted({r for r in given if r not in asked or r in seen} | (set(probs) - set(given)))
        if wrong or len(set(given)) != len(given):
            raise CacheError(f"{key.stem}: encoder returned rows {wrong[:5]} it was not asked for (or twice)")
        seen.update(given)
        return emb, probs

    @staticmethod
    def _write_shard(sdir: Path, name: str, held: list[tuple[np.ndarray, np.ndarray]],
                     probs: Mapping[int, RowProblem]) -> None:
        rows = np.concatenate([r for r, _ in held])
        emb = np.concatenate([e for _, e in held])
        # the rows and problems first: a shard counts as done only when its .npy exists
        atomic_write_text(sdir / f"{name}.json", json.dumps({"rows": rows.tolist(),
                                                              "problems": _problems_to_json(probs)}))
        with atomic_path(sdir / f"{name}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, emb)
        failpoint("embedding_cache.shard")

    def _assemble(self, key: CacheKey, sdir: Path, plan: "_BuildPlan", encoded: Sequence[tuple[int, int | None]],
                  shard_size: int) -> None:
        widths = {d for _, d in encoded if d is not None}
        if plan.dim is not None:
            widths.add(plan.dim)
        if plan.reuse and plan.old_arr is not None:
            widths.add(plan.old_arr.shape[1])
        if len(widths) != 1:
            raise CacheError(f"{key.stem}: the encoder returned rows of different widths {sorted(widths)}")
        dim = widths.pop()
        shards, _ = self._done_shards(sdir, key.count)  # this build's and the resumed ones
        arr_path = self.array_path(key)
        problems: dict[int, RowProblem] = {}
        filled = np.zeros(key.count, dtype=bool)
        with atomic_path(arr_path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(key.count, dim))
            for name, rows in shards:
                out[rows] = np.load(sdir / f"{name}.npy")
                problems.update(_problems_from_json(json.loads((sdir / f"{name}.json").read_text())["problems"]))
                filled[rows] = True
            for new, old in sorted(plan.reuse.items()):
                if not filled[new]:
                    assert plan.old_arr is not None
                    out[new] = plan.old_arr[old]
                    if old in plan.old_problems:
                        problems[new] = plan.old_problems[old]
                    filled[new] = True
            if not filled.all():
                raise CacheError(f"{key.stem}: rows {np.flatnonzero(~filled)[:5].tolist()} were not extracted "
                                 f"(a shard under {sdir} went missing); run again to extract them")
            out.flush()
            del out
        stats = {"copied": len(plan.reuse), "encoded": sum(n for n, _ in encoded), "resumed": plan.resumed}
        manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION, "split": key.split, "modality": key.modality, "encoder": key.encoder,
            "source_hash": key.source_hash, "count": key.count, "extra": key.extra, "shape": [key.count, dim],
            "dtype": "float32", "digest": file_digest(arr_path), "fingerprint": key.fingerprint(),
            "encoder_fingerprint": key.encoder_fingerprint(), "shard_size": shard_size,
            "problems": _problems_to_json(problems), "last_build": stats}
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

    @staticmethod
    def _done_shards(sdir: Path, count: int) -> tuple[list[tuple[str, np.ndarray]], int | None]:
        """The complete shards under ``sdir`` (name, rows), in name order, and their width; a
        damaged shard, or one whose rows another shard already holds, is removed."""
        shards: list[tuple[str, np.ndarray]] = []
        dim: int | None = None
        held = np.zeros(count, dtype=bool)
        for p in sorted(sdir.glob("part-*.npy")):
            side = p.with_suffix(".json")
            try:
                arr = np.load(p, mmap_mode="r")
                rows = np.asarray(json.loads(side.read_text(encoding="utf-8"))["rows"], dtype=np.int64)
            except (ValueError, OSError, KeyError, TypeError):
                p.unlink(missing_ok=True)
                continue
            in_range = rows.ndim == 1 and (not len(rows) or (rows.min() >= 0 and rows.max() < count))
            if (not in_range or arr.ndim != 2 or arr.dtype != np.float32 or arr.shape[0] != len(rows)
                    or (dim is not None and arr.shape[1] != dim)
                    or held[rows].any() or len(np.unique(rows)) != len(rows)):
                p.unlink(missing_ok=True)
                continue
            held[rows] = True
            dim = arr.shape[1]
            shards.append((p.stem, rows))
        return shards, dim

    def get_or_build(self, key: CacheKey, encode: Encode | StreamEncode, *, shard_size: int = 1024,
                     progress: bool = True, force: bool = False, desc: str | None = None, mmap: bool = False,
                     retry_failed: bool = False, streaming: bool = False,
                     processes: Processes | None = None) -> tuple[np.ndarray, bool]:
        """``(array, built)``: the cached array when valid, else a fresh build (``built=True``,
        see :meth:`build` for ``streaming`` and ``processes``: with a launched job every process
        calls this and the main process decides).

        ``force`` re-encodes every row; ``retry_failed`` re-encodes the rows that failed before
        (the others are copied)."""
        procs = processes or Processes.single()
        reason, error = None, None
        if procs.is_main:
            try:
                reason = "rebuild forced" if force else self.check(key)
                if reason is None and retry_failed and any(not p.embedded for p in self.problems(key).values()):
                    reason = "retrying the rows that failed"
                if reason is not None and force:  # nothing of an earlier cache or an interrupted build is reused
                    self.manifest_path(key).unlink(missing_ok=True)
                    shutil.rmtree(self.shard_dir(key), ignore_errors=True)
            except Exception as e:  # noqa: BLE001 - told to the other processes, then raised
                error = e
        self._agree(key, procs, error)
        reason = procs.broadcast(reason)
        if reason is None:
            log.info("%s: cache is valid (%s)", key.stem, self.array_path(key))
            return np.load(self.array_path(key), mmap_mode="r" if mmap else None), False
        log.info("%s: building embedding cache (%s)", key.stem, reason)
        arr = self.build(key, encode, shard_size=shard_size, progress=progress, desc=desc,
                         retry_failed=retry_failed, streaming=streaming, processes=procs)
        return (np.load(self.array_path(key), mmap_mode="r") if mmap else arr), True


@dataclass
class _BuildPlan:
    """What the main process found before a build: each process's block of rows to embed, the
    name token of this build's shards, the shards already done, and the rows to copy."""

    blocks: list[list[int]]
    token: str
    shards: list[tuple[str, np.ndarray]]
    dim: int | None
    reuse: dict[int, int]
    old_arr: np.ndarray | None
    old_problems: dict[int, RowProblem]
    resumed: int
