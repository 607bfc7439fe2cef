"""Multi-threaded columnar reader for FAME feature CSVs (the common, well-formed case).

:func:`read_feature_csv_arrow` parses a headerless feature CSV with ``pyarrow.csv`` (blocks
parsed and converted on all cores) and returns exactly what the strict reader
(:func:`modalink.data.fame_csv.read_feature_csv`) returns for the same file, or ``None``
whenever it cannot vouch for that: pyarrow missing, any pyarrow error (a wrong width, an empty
or non-numeric cell, invalid UTF-8, a blank line inside the data, ...), or a non-finite value.
The caller then runs the strict reader, which locates and reports the problem (file, line,
column).

Bit-identical values: the strict reader converts each cell to float64 (correctly rounded) and
casts to float32, so this reader asks pyarrow for float64 columns and casts the same way
(pyarrow's own float32 conversion rounds once, directly, and differs on rare cells lying next
to a float32 rounding midpoint). The file is read in pieces of whole lines, so the float64
intermediate stays small whatever the file size.

pyarrow is stricter than NumPy about whitespace (it accepts spaces and tabs around a number,
not form feeds or Unicode spaces) and never more lenient: quoting is off, nothing is read as
null, and every row must have the first row's width.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_feature_csv_arrow", "arrow_available"]

#: bytes of CSV text parsed per pyarrow call (each call uses all cores)
PIECE_BYTES = 64 << 20


def arrow_available() -> bool:
    """Whether pyarrow's CSV reader can be imported."""
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def _pieces(path: Path, piece_bytes: int):
    """Consecutive chunks of whole lines (the last one without trailing empty lines)."""
    with open(path, "rb") as fh:
        while True:
            data = fh.read(piece_bytes)
            if not data:
                return
            tail = fh.readline()
            data += tail
            if not tail or not fh.peek(1):
                # end of file: empty lines that trail the data are allowed (as in the strict reader)
                data = data.rstrip(b"\r\n")
                if data:
                    yield data + b"\n"
                return
            yield data


def _options(dim: int, block_size: int):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {f"f{i}": pa.float64() for i in range(dim)}
    types[f"f{dim}"] = pa.string()
    read = pacsv.ReadOptions(autogenerate_column_names=True, use_threads=True, block_size=block_size)
    parse = pacsv.ParseOptions(delimiter=",", quote_char=False, escape_char=False, ignore_empty_lines=False,
                               newlines_in_values=False)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False,
                                   quoted_strings_can_be_null=False, check_utf8=True)
    return read, parse, convert


def read_feature_csv_arrow(path: str | os.PathLike, dim: int, has_label: bool | None = True, *,
                           piece_bytes: int = PIECE_BYTES, block_size: int = 1 << 22
                           ) -> tuple[np.ndarray, list[str] | None] | None:
    """``(features float32 N×dim, label tokens or None)`` of a well-formed feature CSV, else ``None``.

    Label tokens are the stripped text of the last column (``dim + 1`` columns); the caller
    parses them as the strict reader does. ``None`` means: use the strict reader (it reports
    the problem, or reads a file this reader declines, e.g. one with exotic whitespace).
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    path = Path(path)
    allowed = (dim, dim + 1) if has_label is None else ((dim + 1,) if has_label else (dim,))
    read_opts, parse_opts, convert_opts = _options(dim, block_size)
    size = path.stat().st_size
    capacity = 0
    with open(path, "rb") as fh:  # rows: one per "\n"; grown below for files with bare "\r" line ends
        for block in iter(lambda: fh.read(1 << 24), b""):
            capacity += block.count(b"\n")
    feats = np.empty((max(capacity, 1), dim), dtype=np.float32)
    labels: list[str] | None = None
    n_rows = 0
    width: int | None = None
    try:
        for piece in _pieces(path, max(piece_bytes, 1)):
            table = pacsv.read_csv(pa.BufferReader(piece), read_options=read_opts, parse_options=parse_opts,
                                   convert_options=convert_opts)
            if width is None:
                width = table.num_columns
                if width not in allowed:
                    return None
                if width == dim + 1:
                    labels = []
            elif table.num_columns != width:
                return None
            rows = table.num_rows
            if n_rows + rows > len(feats):
                grown = np.empty((max(2 * len(feats), n_rows + rows), dim), dtype=np.float32)
                grown[:n_rows] = feats[:n_rows]
                feats = grown
            block = np.empty((dim, rows), dtype=np.float64)
            for j in range(dim):
                col = table.column(j)
                if col.null_count or col.type != pa.float64():
                    return None
                block[j] = col.to_numpy()
            out = feats[n_rows:n_rows + rows]
            with np.errstate(over="ignore"):  # out of float32 range -> inf, declined just below
                out[...] = block.T  # float64 -> float32, as the strict reader casts
            if not np.isfinite(out).all():
                return None
            if labels is not None:
                labels.extend(t.strip() for t in table.column(dim).to_pylist())
            n_rows += rows
            del table, block
    except (pa.ArrowException, ValueError, OSError):
        return None
    if n_rows == 0 or size == 0:
        return None
    if n_rows != len(feats):
        feats = feats[:n_rows].copy()
    return feats, labels
