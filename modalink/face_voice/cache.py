"""Binary cache for feature CSVs: parse each CSV once, then load a memmap-able ``.npy``.

For every CSV the cache holds ``<name>.npy`` (float32 N×dim), ``<name>.labels.npy`` when the
CSV has a label column, and ``<name>.json``, a sidecar written last (it is the commit marker)
recording the CSV's size, ``st_mtime_ns`` and a BLAKE2b-128 digest of its bytes.

Freshness check (``verify``):

* ``"hash"`` (default): the CSV's digest is recomputed on every load (BLAKE2b reads about
  1 GB/s, roughly a tenth of a CSV parse), so a CSV edited in place with its size and mtime
  kept (``rsync -t``, ``cp -p``, ``tar``) is never served stale.
* ``"stat"``: size and mtime equal → hit without reading the CSV (faster, but blind to such
  edits); mtime different → the digest decides.

The cached arrays are content-checked too: the sidecar records the BLAKE2b of each ``.npy``,
and an entry whose arrays were altered, truncated or hold non-finite values is rebuilt from
the CSV with a warning. ``digests`` maps every CSV loaded to its digest (a run's data
fingerprint).

All files are written atomically (:mod:`modalink.io`); a crash leaves either the old entry or
none. When the cache folder cannot be written, the parsed arrays are returned uncached with a
warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from modalink.face_voice.feature_csv import read_feature_csv
from modalink.errors import InputError
from modalink.io import atomic_path, atomic_write_text, file_digest

__all__ = ["CACHE_FORMAT", "FeatureCache", "file_digest", "cache_name_for"]

CACHE_FORMAT = 1
CacheStatus = Literal["hit", "miss", "stale"]


def cache_name_for(csv_path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Cache entry name: the CSV's path relative to ``root`` with ``/`` → ``__`` when it lies
    under ``root``; otherwise its file stem plus a short digest of its absolute path."""
    csv_path = Path(csv_path).resolve()
    if root is not None:
        try:
            rel = csv_path.relative_to(Path(root).resolve())
            return "__".join(rel.with_suffix("").parts)
        except ValueError:
            pass
    tag = hashlib.blake2b(str(csv_path).encode(), digest_size=4).hexdigest()
    return f"{csv_path.stem}-{tag}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class FeatureCache:
    """Folder of ``.npy`` copies of feature CSVs; see the module docstring for the rules.

    ``stats`` counts ``hit`` / ``miss`` / ``stale`` lookups; ``last_status`` is the latest.
    """

    cache_dir: Path
    verify: Literal["stat", "hash"] = "hash"
    stats: dict[str, int] = field(default_factory=lambda: {"hit": 0, "miss": 0, "stale": 0})
    last_status: CacheStatus | None = None
    digests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        if self.verify not in ("stat", "hash"):
            raise InputError(f"verify must be 'stat' or 'hash', got {self.verify!r}")

    def entry_paths(self, name: str) -> tuple[Path, Path, Path]:
        """``(features .npy, labels .npy, sidecar .json)`` paths of entry ``name``."""
        base = self.cache_dir / name
        return (base.with_name(name + ".npy"), base.with_name(name + ".labels.npy"),
                base.with_name(name + ".json"))

    def _read_sidecar(self, name: str) -> dict | None:
        meta_path = self.entry_paths(name)[2]
        try:
            return json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def lookup(self, csv_path: str | os.PathLike, dim: int, has_label: bool | None,
               name: str | None = None) -> CacheStatus:
        """Whether the entry for ``csv_path`` is a ``hit``, a ``miss`` or ``stale`` (no loading,
        no side effects; with ``verify='stat'`` a changed mtime costs one digest)."""
        return self._check(Path(csv_path), dim, has_label, name or cache_name_for(csv_path))[0]

    def _check(self, csv_path: Path, dim: int, has_label: bool | None, name: str
               ) -> tuple[CacheStatus, dict | None, str | None]:
        meta = self._read_sidecar(name)
        if meta is None:
            return "miss", None, None
        st = csv_path.stat()
        same_request = (meta.get("format") == CACHE_FORMAT and meta.get("dim") == dim
                        and meta.get("has_label", "absent") == has_label)
        npy, labels_npy, _ = self.entry_paths(name)
        files_ok = npy.is_file() and (not meta.get("labels") or labels_npy.is_file())
        if not (same_request and files_ok) or meta.get("size") != st.st_size:
            return "stale", meta, None
        if self.verify == "stat" and meta.get("mtime_ns") == st.st_mtime_ns and meta.get("blake2b"):
            return "hit", meta, meta["blake2b"]
        digest = file_digest(csv_path)
        return ("hit" if digest == meta.get("blake2b") else "stale"), meta, digest

    def load(self, csv_path: str | os.PathLike, dim: int, has_label: bool | None = True, *,
             name: str | None = None, mmap: bool = False, progress: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Like :func:`~modalink.face_voice.feature_csv.read_feature_csv`, through the cache.

        ``mmap=True`` returns read-only memory maps of the cached arrays, the converting call
        included (the parsed arrays are dropped once written), so only the pages a caller
        touches take memory; in-memory arrays when the cache could not be written.
        """
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise FileNotFoundError(f"feature CSV not found: {csv_path}")
        name = name or cache_name_for(csv_path)
        status, meta, digest = self._check(csv_path, dim, has_label, name)
        self.stats[status] += 1
        self.last_status = status
        npy, labels_npy, meta_path = self.entry_paths(name)
        if status == "hit":
            problem = self._damage(meta or {}, npy, labels_npy)
            if problem is None:
                try:
                    feats = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
                    labels = (np.load(labels_npy, mmap_mode="r" if mmap else None, allow_pickle=False)
                              if meta and meta.get("labels") else None)
                    if (feats.dtype == np.float32 and feats.shape == (meta["rows"], dim)
                            and (labels is None or len(labels) == meta["rows"])):
                        if meta.get("mtime_ns") != csv_path.stat().st_mtime_ns:
                            self._write_sidecar(meta_path, {**meta, "mtime_ns": csv_path.stat().st_mtime_ns})
                        self.digests[str(csv_path.resolve())] = meta["blake2b"]
                        return feats, labels
                    problem = "array shape or type does not match the sidecar"
                except (OSError, ValueError, KeyError) as exc:
                    problem = f"unreadable ({exc})"
            warnings.warn(f"feature cache entry {npy} is damaged ({problem}); rebuilding it from {csv_path}",
                          RuntimeWarning, stacklevel=2)
            self.stats["hit"] -= 1
            self.stats["stale"] += 1
            self.last_status = "stale"
        return self._rebuild(csv_path, dim, has_label, name, digest, progress, mmap)

    @staticmethod
    def _damage(meta: dict, npy: Path, labels_npy: Path) -> str | None:
        """What is wrong with the cached arrays (digest mismatch), or ``None``."""
        want = meta.get("npy_blake2b")
        if not want:
            return "its sidecar records no array digest"
        if file_digest(npy) != want:
            return f"{npy.name} changed after it was written"
        if meta.get("labels") and file_digest(labels_npy) != meta.get("labels_blake2b"):
            return f"{labels_npy.name} changed after it was written"
        return None

    def _rebuild(self, csv_path: Path, dim: int, has_label: bool | None, name: str,
                 digest: str | None, progress: bool, mmap: bool = False
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        st = csv_path.stat()
        digest = digest or file_digest(csv_path)
        feats, labels = read_feature_csv(csv_path, dim, has_label, progress=progress)
        npy, labels_npy, meta_path = self.entry_paths(name)
        meta = {
            "format": CACHE_FORMAT, "csv": str(csv_path.resolve()), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "blake2b": digest, "dim": dim, "has_label": has_label,
            "rows": int(len(feats)), "labels": labels is not None,
            "label_dtype": None if labels is None else str(labels.dtype),
        }
        self.digests[str(csv_path.resolve())] = digest
        try:
            meta_path.unlink(missing_ok=True)  # invalidate first: arrays and sidecar change together
            _save_npy(npy, feats)
            meta["npy_blake2b"] = file_digest(npy)
            if labels is not None:
                _save_npy(labels_npy, labels)
                meta["labels_blake2b"] = file_digest(labels_npy)
            self._write_sidecar(meta_path, meta)
        except OSError as exc:
            warnings.warn(f"could not write feature cache in {self.cache_dir} ({exc}); "
                          f"continuing without it", RuntimeWarning, stacklevel=3)
            return feats, labels
        if mmap:
            del feats
            feats = np.load(npy, mmap_mode="r", allow_pickle=False)
            if labels is not None:
                labels = np.load(labels_npy, mmap_mode="r", allow_pickle=False)
        return feats, labels

    @staticmethod
    def _write_sidecar(meta_path: Path, meta: dict) -> None:
        atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
