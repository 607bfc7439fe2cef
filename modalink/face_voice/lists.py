"""The one reader of FAME's list files: pair lists and ground truth.

* pair list ``<Lang>_test.txt``:    ``key voices/English/00000.wav faces/English/00000.jpg``
* ground truth ``<Lang>_test.txt``: ``key label``, label 1 (same person) or 0 (``1.0``/``0.0``
  are read as 1/0, as the organisers' scorer does)

Both the training recipes (:mod:`modalink.face_voice.features`) and the submission tools (:mod:`challenge`)
read them here, so a file is accepted or refused the same way everywhere. Rules: UTF-8 (a BOM
is accepted), fields separated by whitespace, blank lines skipped (``blank_lines="error"`` refuses
them), no duplicate key, no empty file. Every error is a :class:`FeatureFileError` naming the
file and the 1-based line.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Literal, NamedTuple

from modalink.face_voice.layout import FeatureFileError

__all__ = ["PairEntry", "read_pairs", "read_ground_truth", "ground_truth_lines"]

BlankLines = Literal["skip", "error"]


class PairEntry(NamedTuple):
    """One trial of a pair list (``line``: its 1-based line number)."""

    key: str
    voice_path: str
    face_path: str
    line: int = 0


def _records(path: Path, n_fields: int, layout: str, what: str, blank_lines: BlankLines
             ) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FeatureFileError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            if blank_lines == "error":
                raise FeatureFileError(path, f"blank line inside the {what}", lineno)
            continue
        if len(fields) != n_fields:
            raise FeatureFileError(path, f"expected {n_fields} fields '{layout}', found {len(fields)}: "
                                   f"{line.strip()[:80]!r}", lineno)
        yield lineno, fields


def read_pairs(path: str | os.PathLike, *, blank_lines: BlankLines = "skip") -> list[PairEntry]:
    """Read a FAME pair list, in file order."""
    path = Path(path)
    pairs: list[PairEntry] = []
    first: dict[str, int] = {}
    for lineno, (key, voice, face) in _records(path, 3, "key voice_path face_path", "pair list", blank_lines):
        if key in first:
            raise FeatureFileError(path, f"duplicate key {key!r} (first on line {first[key]})", lineno)
        first[key] = lineno
        pairs.append(PairEntry(key, voice, face, lineno))
    if not pairs:
        raise FeatureFileError(path, "pair list is empty")
    return pairs



def read_ground_truth(path: str | os.PathLike, *, both_classes: bool = True,
                      blank_lines: BlankLines = "skip") -> dict[str, int]:
    """Read ``key label`` lines into ``{key: 0|1}``; ``both_classes`` refuses a file with one class
    (no EER can be computed from it)."""
    path = Path(path)
    labels: dict[str, int] = {}
    first: dict[str, int] = {}
    for lineno, (key, raw) in _records(path, 2, "key label", "ground-truth file", blank_lines):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if value not in (0.0, 1.0):
            raise FeatureFileError(path, f"key {key!r}: label must be 0 or 1, got {raw!r}", lineno, 2)
        if key in labels:
            raise FeatureFileError(path, f"duplicate key {key!r} (first on line {first[key]})", lineno)
        labels[key] = int(value)
        first[key] = lineno
    if not labels:
        raise FeatureFileError(path, "ground-truth file is empty")
    if both_classes and len(set(labels.values())) < 2:
        raise FeatureFileError(path, f"ground truth has only label {next(iter(labels.values()))}; need both 0 and 1")
    return labels


def ground_truth_lines(path: str | os.PathLike) -> dict[str, int]:
    """``{key: line number}`` of a ground-truth file."""
    return {fields[0]: lineno for lineno, fields in _records(Path(path), 2, "key label", "ground-truth file", "skip")}
