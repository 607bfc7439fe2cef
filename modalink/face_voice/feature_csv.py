"""Strict, fast readers for the FAME / MAV-Celeb text files.

* :func:`read_feature_csv` — headerless feature CSVs (one row per face/voice pair, optional
  trailing identity-label column). By default a well-formed file is read by pyarrow's
  multi-threaded CSV reader (:mod:`modalink.face_voice.feature_arrow`, same values bit for bit); any
  file it declines goes through the strict parser: rows parsed in chunks with NumPy's
  ``loadtxt`` into one preallocated float32 array, widths checked per line, and any parse
  failure re-located so the error names the file, the 1-based line and the column. Either
  way once per CSV: later loads come from the content-checked ``.npy`` cache.

Pair lists and ground truth are read by :mod:`modalink.face_voice.lists`.
"""
from __future__ import annotations

import os
import re
from itertools import islice
from pathlib import Path

import numpy as np

from modalink.errors import InputError
from modalink.face_voice.layout import FeatureFileError
from modalink.progress import progress_bar

__all__ = [
    "read_feature_csv",
]

_INT_RE = re.compile(r"[+-]?\d+\Z")


def _count_rows_upper_bound(path: Path, block: int = 1 << 24) -> int:
    """Number of ``\\n``-terminated lines, plus one for an unterminated last line (files with
    bare ``\\r`` line ends are under-counted; the reader then grows its buffer)."""
    count, last = 0, b""
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(block)
            if not buf:
                break
            count += buf.count(b"\n")
            last = buf[-1:]
    return count + (0 if last in (b"\n", b"") else 1)


def _allowed_widths(dim: int, has_label: bool | None) -> tuple[int, ...]:
    if has_label is None:
        return (dim, dim + 1)
    return (dim + 1,) if has_label else (dim,)


def _describe_width(dim: int, has_label: bool | None) -> str:
    if has_label is None:
        return f"{dim} (features) or {dim + 1} (features + label)"
    return f"{dim + 1} ({dim} features + 1 label)" if has_label else f"{dim} (features, no label)"


def _diagnose(path: Path, lines: list[str], first_lineno: int, width: int, dim: int,
              has_label: bool | None) -> FeatureFileError:
    """Find the first line/column ``loadtxt`` refused (slow path, only run after a failure)."""
    for offset, line in enumerate(lines):
        lineno = first_lineno + offset
        found = line.count(",") + 1
        if found != width:
            return FeatureFileError(path, f"found {found} columns, expected {width} (as on the "
                                    f"first row; {_describe_width(dim, has_label)} allowed)", lineno)
        cells = line.rstrip("\r\n").split(",")[:dim]
        try:
            np.loadtxt([",".join(cells)], delimiter=",", dtype=np.float32, comments=None, ndmin=2)
            continue
        except ValueError:
            pass
        for col, cell in enumerate(cells, start=1):
            try:
                # with a delimiter, an empty field is an error (alone it would be "no data")
                np.loadtxt([cell + ",0"], delimiter=",", dtype=np.float32, comments=None)
            except ValueError:
                shown = cell if len(cell) <= 40 else cell[:37] + "..."
                return FeatureFileError(path, f"not a number: {shown!r}", lineno, col)
        return FeatureFileError(path, "could not parse this row", lineno)
    return FeatureFileError(path, f"could not parse lines {first_lineno}..{first_lineno + len(lines) - 1}")


def _parse_labels(path: Path, tokens: list[str]) -> np.ndarray:
    """Integer labels when every token is an integer (``3`` or ``3.0``), else string labels."""
    for i, tok in enumerate(tokens):
        if not tok:
            raise FeatureFileError(path, "empty label cell", i + 1, None)
        if "\ufffd" in tok:
            raise FeatureFileError(path, f"label is not valid UTF-8 text: {tok!r}", i + 1)
    if all(_INT_RE.match(t) for t in tokens):
        return np.array([int(t) for t in tokens], dtype=np.int64)
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        return np.array(tokens, dtype=str)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if bad.size:
        i = int(bad[0])
        raise FeatureFileError(path, f"identity label must be an integer or a name, found {tokens[i]!r}",
                               i + 1)
    return values.astype(np.int64)


def read_feature_csv(path: str | os.PathLike, dim: int, has_label: bool | None = True, *,
                     chunk_rows: int = 1024, progress: bool = False, engine: str = "auto"
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a headerless FAME feature CSV into ``(features float32 N×dim, labels or None)``.

    ``has_label``: ``True`` — every row has ``dim + 1`` cells, the last one the identity label
    (training files); ``False`` — exactly ``dim`` cells; ``None`` — either width (the whole file
    consistent), a label column being returned when present (test files of some releases).
    Labels come back as int64 when every label is an integer, else as strings.

    Raises ``FileNotFoundError`` for a missing file and :class:`FeatureFileError` (a
    ``ValueError``) naming file, 1-based line and column for: an empty file, a blank line
    inside the data, a row of the wrong width, a non-numeric or non-finite cell, a bad label.
    Trailing blank lines are ignored; CRLF line ends and a UTF-8 BOM are accepted.

    ``engine``: ``"auto"`` — pyarrow's multi-threaded reader when installed, the strict parser
    for any file it declines (which then reports the problem); ``"strict"`` — the strict
    parser only. Both give the same arrays bit for bit.
    """
    path = Path(path)
    if dim < 1:
        raise InputError(f"dim must be positive, got {dim}")
    if engine not in ("auto", "strict"):
        raise InputError(f"engine must be 'auto' or 'strict', got {engine!r}")
    if not path.is_file():
        raise FileNotFoundError(f"feature CSV not found: {path}")
    size = path.stat().st_size
    allowed = _allowed_widths(dim, has_label)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    for sig, kind, fix in ((b"\x1f\x8b", "gzip-compressed", "gunzip it"), (b"PK\x03\x04", "a zip archive", "unzip it"),
                           (b"\x93NUM", "a NumPy .npy file", "pass the CSV it was made from")):
        if magic.startswith(sig):
            raise FeatureFileError(path, f"is {kind}, not a text CSV; {fix} first")
    if engine == "auto" and size > 0:
        from modalink.face_voice.feature_arrow import read_feature_csv_arrow

        fast = read_feature_csv_arrow(path, dim, has_label, progress=progress)
        if fast is not None:
            feats, tokens = fast
            return feats, (_parse_labels(path, tokens) if tokens else None)

    capacity = max(_count_rows_upper_bound(path), 1)
    feats = np.empty((capacity, dim), dtype=np.float32)
    label_tokens: list[str] = []
    n_rows = 0
    lineno = 0
    width: int | None = None
    blank_line: int | None = None

    bar = progress_bar(total=size, unit="B", unit_scale=True, desc=path.name, enabled=progress, leave=False)
    with open(path, "r", encoding="utf-8-sig", errors="replace", newline=None) as fh, bar:
        while True:
            lines = list(islice(fh, chunk_rows))
            if not lines:
                break
            bar.update(sum(len(line) for line in lines))
            chunk_first = lineno + 1
            data: list[str] = []
            for line in lines:
                lineno += 1
                if len(line) < 16 and not line.strip():
                    if blank_line is None:
                        blank_line = lineno
                    continue
                if blank_line is not None:
                    raise FeatureFileError(path, "blank line inside the data (rows must be "
                                           "contiguous to stay aligned with the pair list)",
                                           blank_line)
                data.append(line)
            if not data:
                continue
            # Data lines of this chunk start at chunk_first (blank lines only ever trail).
            if width is None:
                width = data[0].count(",") + 1
                if width not in allowed:
                    raise FeatureFileError(
                        path, f"found {width} columns, expected {_describe_width(dim, has_label)}",
                        chunk_first)
            feat_lines = data
            if width == dim + 1:
                parts = [line.rpartition(",") for line in data]
                label_tokens.extend(p[2].strip() for p in parts)
                feat_lines = [p[0] for p in parts]
            try:
                block = np.loadtxt(feat_lines, delimiter=",", dtype=np.float32, comments=None,
                                   ndmin=2)
            except ValueError:
                block = None
            if block is None or block.shape[1] != dim:
                raise _diagnose(path, data, chunk_first, width, dim, has_label)
            if n_rows + len(block) > len(feats):  # only with exotic line ends; grow
                grown = np.empty((max(2 * len(feats), n_rows + len(block)), dim), dtype=np.float32)
                grown[:n_rows] = feats[:n_rows]
                feats = grown
            feats[n_rows:n_rows + len(block)] = block
            n_rows += len(block)

    if n_rows == 0:
        what = "file is empty" if size == 0 else "file holds no data rows (only blank lines)"
        raise FeatureFileError(path, what)
    if n_rows != len(feats):
        feats = feats[:n_rows].copy()
    finite = np.isfinite(feats)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise FeatureFileError(path, f"non-finite value {feats[row, col]}: every feature must be a finite number "
                                     "(re-extract the features of this row)", int(row) + 1, int(col) + 1)
    labels = _parse_labels(path, label_tokens) if label_tokens else None
    return feats, labels

