"""Multi-threaded reader for well-formed FAME feature CSVs, built on pyarrow's number parser.

:func:`read_feature_csv_arrow` returns exactly what the strict reader
(:func:`modalink.face_voice.feature_csv.read_feature_csv`) returns for the same file, or ``None``
whenever it cannot vouch for that: pyarrow missing, a row of another width, an empty,
non-numeric or non-finite cell, a blank line inside the data, invalid UTF-8, bare ``\\r`` line
ends. The caller then runs the strict reader, which locates and reports the problem (file,
line, column), or reads the rare valid file declined here (e.g. spaces around a number).

How: the file is cut into pieces of whole lines, parsed on a thread pool (NumPy and
``pyarrow.compute`` release the GIL). In each piece the cell boundaries are found with NumPy
(every row must have the first row's width), the cells become one Arrow string array over the
piece's bytes (no copy), and ``pyarrow.compute.cast`` parses them all to float64 at once, in
row-major order. On 4,097-column rows this costs about half the CPU of pyarrow's own CSV
reader, whose per-column work dominates on such wide rows.

Bit-identical values: the strict reader converts each cell to float64 (correctly rounded) and
casts to float32; so does this reader (a direct float32 parse rounds once and differs on rare
cells lying next to a float32 rounding midpoint). pyarrow's parser accepts the same number
spellings as NumPy's (``1e5``, ``.5``, ``+1``, ``inf``, ``nan``, ...) and refuses whitespace.
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["read_feature_csv_arrow", "arrow_available"]

#: bytes of CSV text parsed per task (a task's temporaries take about 6× this)
PIECE_BYTES = 16 << 20
_BOM = b"\xef\xbb\xbf"


class _Declined(Exception):
    """The piece is not in the well-formed subset this reader handles."""


def arrow_available() -> bool:
    """Whether ``pyarrow.compute`` can be imported."""
    try:
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return False
    return True


def _pieces(path: Path, piece_bytes: int) -> Iterator[bytes]:
    """Consecutive chunks of whole ``\\n``-terminated lines; the empty lines that trail the data
    are dropped (the strict reader ignores them)."""
    with open(path, "rb") as fh:
        first = True
        while True:
            data = fh.read(piece_bytes)
            if not data:
                return
            tail = fh.readline()
            data += tail
            if first and data.startswith(_BOM):
                data = data[len(_BOM):]
            first = False
            if not fh.peek(1):
                data = data.rstrip(b"\r\n")
                if data:
                    yield data + b"\n"
                return
            yield data


def _parse_piece(piece: bytes, dim: int, width: int, out: np.ndarray) -> list[str] | None:
    """Parse ``piece`` (``len(out)`` lines of ``width`` cells) into ``out`` (float32); returns the
    stripped label tokens when ``width == dim + 1``. Raises :class:`_Declined` (or a pyarrow error)
    for anything outside the well-formed subset."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(out)
    u = np.frombuffer(piece, dtype=np.uint8)
    newline = u == 10
    ends = np.flatnonzero(newline | (u == 44))  # where each cell ends
    del newline
    if len(ends) != n * width:
        raise _Declined
    ends = ends.reshape(n, width)
    if not (u[ends[:, -1]] == 10).all():  # the n line ends close the rows: every other end is a comma
        raise _Declined
    labels = None
    if width == dim + 1:
        starts = ends[:, dim - 1] + 1
        stops = ends[:, dim]
        try:
            labels = [piece[a:b].decode("utf-8").strip() for a, b in zip(starts.tolist(), stops.tolist())]
        except UnicodeDecodeError:
            raise _Declined from None
        lengths = stops - starts
        if (lengths == 0).any():
            raise _Declined
        # label cells become "0" digits so that one cast parses the whole piece
        writable = np.frombuffer(bytearray(piece), dtype=np.uint8)
        first = np.cumsum(lengths) - lengths
        pos = np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))
        writable[pos] = ord("0")
        u = writable
    offsets = np.empty(n * width + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends.reshape(-1)
    # cell i spans (end of cell i-1, end of cell i]: its text plus the separator before it
    cells = pa.LargeStringArray.from_buffers(n * width, pa.py_buffer(offsets), pa.py_buffer(u))
    values = pc.cast(pc.ascii_ltrim(cells, characters=",\n"), pa.float64())
    del cells, offsets
    if values.null_count:
        raise _Declined
    grid = values.to_numpy(zero_copy_only=True).reshape(n, width)
    with np.errstate(over="ignore"):  # out of float32 range -> inf, declined below
        out[...] = grid[:, :dim]  # float64 -> float32, as the strict reader casts
    if not np.isfinite(out).all():
        raise _Declined
    return labels


def read_feature_csv_arrow(path: str | os.PathLike, dim: int, has_label: bool | None = True, *,
                           piece_bytes: int = PIECE_BYTES, threads: int | None = None,
                           progress: bool = False) -> tuple[np.ndarray, list[str] | None] | None:
    """``(features float32 N×dim, label tokens or None)`` of a well-formed feature CSV, else ``None``.

    Label tokens are the stripped text of the last column (``dim + 1`` columns); the caller
    parses them as the strict reader does. ``None`` means: use the strict reader. ``threads``:
    parsing tasks run at once (default: the CPU count). ``progress``: a bar over the bytes read.
    """
    from modalink.progress import progress_bar

    try:
        import pyarrow as pa
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return None
    path = Path(path)
    allowed = (dim, dim + 1) if has_label is None else ((dim + 1,) if has_label else (dim,))
    capacity = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            capacity += block.count(b"\n")
    feats = np.empty((max(capacity, 1), dim), dtype=np.float32)
    workers = max(1, threads or os.cpu_count() or 1)
    width: int | None = None
    n_rows = 0
    pending: list[Future] = []
    labels: list[str] = []
    bar = progress_bar(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, enabled=progress,
                       leave=False)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool, bar:
            for piece in _pieces(path, max(piece_bytes, 1)):
                bar.update(len(piece))
                if b"\r" in piece:
                    piece = piece.replace(b"\r\n", b"\n")
                    if b"\r" in piece:
                        return None
                if width is None:
                    width = piece.count(b",", 0, piece.index(b"\n")) + 1
                    if width not in allowed:
                        return None
                rows = piece.count(b"\n")
                if n_rows + rows > len(feats):
                    return None
                pending.append(pool.submit(_parse_piece, piece, dim, width, feats[n_rows:n_rows + rows]))
                n_rows += rows
                del piece
                while len(pending) > workers:
                    got = pending.pop(0).result()
                    labels.extend(got or [])
            for fut in pending:
                got = fut.result()
                labels.extend(got or [])
    except (_Declined, pa.ArrowException, ValueError):
        for fut in pending:
            fut.cancel()
        return None
    finally:
        pa.default_memory_pool().release_unused()  # the temporaries' pages back to the system
    if n_rows == 0:
        return None
    if n_rows != len(feats):
        feats = feats[:n_rows].copy()
    return feats, (labels if width == dim + 1 else None)
