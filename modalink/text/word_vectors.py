"""Tokeniser and word vectors: the words of :mod:`modalink.text.encoders` and :mod:`modalink.text.render`.

* :func:`tokenize` — lowercase, words of letters/digits (an inner apostrophe is kept: "don't").
* :class:`WordVectors` — a word → vector table with a vectorised batch gather.

  - ``WordVectors.load(path)`` reads word2vec text (``word v1 ... vD`` with an optional
    ``N D`` header line), GloVe text (same, never a header) and word2vec binary
    (``N D\\n`` then ``word<space><D little-endian float32>[\\n]`` per word).
  - ``WordVectors.hashed(dim, seed)`` is the built-in default that needs no download: every
    word gets a stable pseudo-random vector, uniform in [-1, 1), derived from a keyed
    BLAKE2b hash of the word and a SplitMix64 stream — the same word gives the same vector on
    every machine and run, and unseen words need no vocabulary.
  - Out-of-vocabulary words of a loaded table follow ``oov``: ``"hash"`` (a hashed vector
    scaled to the table's spread; default), ``"zero"`` or ``"skip"`` (the word is dropped).
"""
from __future__ import annotations

import hashlib
import math
import mmap
import os
import re
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from modalink.errors import FileFormatError, InputError
from modalink.io import atomic_path

__all__ = ["tokenize", "WordVectors", "WordVectorsFormatError", "hashed_vectors", "words_in"]

_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

OOVPolicy = Literal["hash", "zero", "skip"]


def tokenize(text: str | None) -> list[str]:
    """Lowercase ``text`` and return its words (``None`` or blank text gives ``[]``)."""
    if not text:
        return []
    return _WORD_RE.findall(text.lower().replace("\u2019", "'"))


class WordVectorsFormatError(FileFormatError):
    """A word-vector file that does not follow the word2vec/GloVe format (names file and line)."""

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)


# ---------------------------------------------------------------------------------------------
# hashed vectors
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrap-around arithmetic is intended)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hashed_vectors(words: Sequence[str], dim: int, seed: int = 0) -> np.ndarray:
    """Stable pseudo-random vectors, uniform in [-1, 1), one row per word (float32)."""
    key = int(seed).to_bytes(8, "little", signed=True)
    h = np.fromiter(
        (int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8, key=key).digest(), "little")
         for w in words),
        dtype=np.uint64,
        count=len(words),
    )
    with np.errstate(over="ignore"):
        state = h[:, None] + np.arange(1, dim + 1, dtype=np.uint64)[None, :] * _GOLDEN
        bits = _mix64(state) >> np.uint64(11)  # 53 random bits
    u = bits.astype(np.float64) * (1.0 / (1 << 53))
    return (2.0 * u - 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
class WordVectors:
    """A word → vector table (float32) with hashed fallback vectors for unknown words.

    ``words``/``matrix`` may be empty (``WordVectors.hashed``): then every word is hashed.
    ``value_range`` gives the (min, max) used by "minmax" quantisation: the table's min/max,
    widened to cover hashed vectors when ``oov="hash"``.
    """

    def __init__(
        self,
        words: Sequence[str] = (),
        matrix: np.ndarray | None = None,
        *,
        dim: int | None = None,
        oov: OOVPolicy = "hash",
        seed: int = 0,
        hash_scale: float | None = None,
    ) -> None:
        if oov not in ("hash", "zero", "skip"):
            raise InputError(f"oov must be 'hash', 'zero' or 'skip', got {oov!r}")
        words = list(words)
        if matrix is None:
            if words:
                raise ValueError("words given without a matrix")
            if dim is None or dim <= 0:
                raise ValueError("an empty WordVectors table needs dim > 0")
            matrix = np.zeros((0, dim), dtype=np.float32)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"matrix shape {matrix.shape} does not match {len(words)} words")
        if dim is not None and matrix.shape[1] != dim:
            raise ValueError(f"matrix has dim {matrix.shape[1]}, expected {dim}")
        self.words: list[str] = words
        self.matrix: np.ndarray = matrix
        self.index: dict[str, int] = {}
        for i, w in enumerate(words):
            self.index.setdefault(w, i)  # first occurrence wins (most frequent in w2v files)
        self.oov: OOVPolicy = oov
        self.seed = int(seed)
        if hash_scale is None:
            # uniform on [-a, a] has std a/sqrt(3): match the table's spread
            hash_scale = float(matrix.std()) * math.sqrt(3.0) if matrix.size else 1.0
        self.hash_scale = float(hash_scale) if hash_scale > 0 else 1.0

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def hashed(cls, dim: int = 300, seed: int = 0) -> "WordVectors":
        """The download-free default: every word gets a stable hashed vector in [-1, 1)."""
        return cls((), None, dim=dim, oov="hash", seed=seed, hash_scale=1.0)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        format: Literal["auto", "text", "binary"] = "auto",
        *,
        limit: int | None = None,
        lowercase: bool = True,
        oov: OOVPolicy = "hash",
        seed: int = 0,
    ) -> "WordVectors":
        """Read word2vec text/binary or GloVe text vectors.

        ``format="auto"`` picks binary for ``.bin`` files or when the bytes after the header
        line are not UTF-8 text. ``limit`` keeps the first N words. ``lowercase`` maps keys to
        lowercase (first occurrence wins), matching :func:`tokenize`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"word-vector file not found: {path}")
        fmt = _sniff_format(path) if format == "auto" else format
        if fmt == "binary":
            words, matrix = _read_binary(path, limit)
        elif fmt == "text":
            words, matrix = _read_text(path, limit)
        else:
            raise InputError(f"format must be 'auto', 'text' or 'binary', got {format!r}")
        if lowercase:
            words = [w.lower() for w in words]
        return cls(words, matrix, oov=oov, seed=seed)

    def save(self, path: str | os.PathLike, format: Literal["text", "binary"] = "text",
             header: bool = True) -> Path:
        """Write the table as word2vec text (``header=False``: GloVe style) or binary, atomically."""
        n, d = self.matrix.shape
        with atomic_path(path) as tmp:
            if format == "binary":
                with open(tmp, "wb") as fh:
                    fh.write(f"{n} {d}\n".encode())
                    for w, row in zip(self.words, self.matrix):
                        fh.write(w.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
            elif format == "text":
                with open(tmp, "w", encoding="utf-8") as fh:
                    if header:
                        fh.write(f"{n} {d}\n")
                    for w, row in zip(self.words, self.matrix):
                        fh.write(w + " " + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n")
            else:
                raise InputError(f"format must be 'text' or 'binary', got {format!r}")
        return Path(path)

    # -- access -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def value_range(self) -> tuple[float, float]:
        """(min, max) of every value this table can return (for "minmax" quantisation)."""
        lo, hi = (float(self.matrix.min()), float(self.matrix.max())) if self.matrix.size else (0.0, 0.0)
        if self.oov == "hash" or not self.matrix.size:
            lo, hi = min(lo, -self.hash_scale), max(hi, self.hash_scale)
        if hi <= lo:
            hi = lo + 1.0
        return lo, hi

    def vector(self, word: str) -> np.ndarray | None:
        """One word's vector (float32, copy); ``None`` when it is unknown and ``oov="skip"``."""
        i = self.index.get(word)
        if i is not None:
            return self.matrix[i].copy()
        if self.oov == "skip":
            return None
        if self.oov == "zero":
            return np.zeros(self.dim, dtype=np.float32)
        return hashed_vectors([word], self.dim, self.seed)[0] * np.float32(self.hash_scale)

    def table(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for distinct ``words`` in one gather: ``(vectors (n, dim), known (n,) bool)``.

        Unknown words get hashed or zero vectors by ``oov``; with ``oov="skip"`` their rows are
        zero and ``known`` is False so callers can drop them.
        """
        rows = np.fromiter((self.index.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        known = rows >= 0
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        out[known] = self.matrix[rows[known]]
        if self.oov == "hash" and not known.all():
            miss = np.flatnonzero(~known)
            out[miss] = hashed_vectors([words[i] for i in miss], self.dim, self.seed) * np.float32(self.hash_scale)
        keep = known if self.oov == "skip" else np.ones(len(words), dtype=bool)
        return out, keep

    def __repr__(self) -> str:
        return f"WordVectors(words={len(self)}, dim={self.dim}, oov={self.oov!r}, seed={self.seed})"


# ---------------------------------------------------------------------------------------------
# file formats
def _parse_header(line: str) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _sniff_format(path: Path) -> str:
    if path.suffix.lower() == ".bin":
        return "binary"
    with open(path, "rb") as fh:
        first = fh.readline(1 << 16)
        chunk = fh.read(1 << 14)
    try:
        header = _parse_header(first.decode("utf-8"))
    except UnicodeDecodeError:
        return "binary"
    if header is None:
        return "text"
    if b"\x00" in chunk:
        return "binary"
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as e:  # a cut multi-byte char at the very end is still text
        if e.start < len(chunk) - 4:
            return "binary"
    return "text"


def _read_text(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    with open(path, "r", encoding="utf-8", errors="strict") as fh:
        for lineno, line in _text_lines(path, fh):
            if limit is not None and len(words) >= limit:
                break
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if lineno == 1:
                header = _parse_header(line)
                if header is not None:
                    dim = header[1]
                    continue
            if dim is None:
                dim = len(line.rstrip().split(" ")) - 1
                if dim < 1:
                    raise WordVectorsFormatError(path, f"expected 'word v1 v2 ...', got {line[:80]!r}", lineno)
            parts = line.rstrip().rsplit(" ", dim)  # words may contain spaces (GloVe 840B)
            if len(parts) != dim + 1 or not parts[0]:
                raise WordVectorsFormatError(path, f"expected a word and {dim} values, got {len(parts) - 1} values",
                                             lineno)
            try:
                row = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise WordVectorsFormatError(path, f"non-numeric value in {line[:80]!r}", lineno) from None
            if not np.isfinite(row).all():
                raise WordVectorsFormatError(path, f"non-finite value (nan or inf) in {line[:80]!r}; every "
                                                   "value must be a finite number", lineno)
            rows.append(row)
            words.append(parts[0])
    if dim is None:
        raise WordVectorsFormatError(path, "no vectors found")
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return words, matrix


def _text_lines(path: Path, fh) -> Iterable[tuple[int, str]]:
    """``(line number, line)`` of a text file; bytes that are not UTF-8 are a format error."""
    lineno = 0
    try:
        for lineno, line in enumerate(fh, 1):
            yield lineno, line
    except UnicodeDecodeError as e:
        raise WordVectorsFormatError(path, f"not UTF-8 text ({e.reason}) after line {lineno}; save the file "
                                           "as UTF-8") from None


def _read_binary(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    with open(path, "rb") as fh:
        header_line = fh.readline()
        try:
            header = _parse_header(header_line.decode("ascii"))
        except UnicodeDecodeError:
            header = None
        if header is None:
            raise WordVectorsFormatError(path, "word2vec binary needs an 'N D' header line", 1)
        n, dim = header
        n = n if limit is None else min(n, limit)
        words: list[str] = []
        matrix = np.empty((n, dim), dtype=np.float32)
        size = os.fstat(fh.fileno()).st_size
        pos = len(header_line)
        if size == pos or n == 0:
            return words, matrix[:0]
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            nbytes = 4 * dim
            for i in range(n):
                while pos < size and mm[pos] in (10, 13, 32):  # the optional '\n' after a vector
                    pos += 1
                end = mm.find(b" ", pos)
                if end < 0 or end + 1 + nbytes > size:
                    raise WordVectorsFormatError(path, f"truncated at entry {i + 1} of {n} (byte {pos})")
                try:
                    words.append(mm[pos:end].decode("utf-8"))
                except UnicodeDecodeError:
                    words.append(mm[pos:end].decode("latin-1"))
                matrix[i] = np.frombuffer(mm, dtype="<f4", count=dim, offset=end + 1)
                if not np.isfinite(matrix[i]).all():
                    raise WordVectorsFormatError(path, f"non-finite value (nan or inf) in the vector of entry "
                                                       f"{i + 1} ({words[-1]!r}); every value must be finite")
                pos = end + 1 + nbytes
    return words, matrix


def words_in(texts: Iterable[str | None]) -> list[str]:
    """Distinct words of ``texts`` in first-seen order (handy to build a small vocabulary)."""
    seen: dict[str, None] = {}
    for t in texts:
        for w in tokenize(t):
            seen.setdefault(w, None)
    return list(seen)
