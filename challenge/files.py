"""Reading FAME pair lists and ground truth, writing one score file, finding the lists.

The pair lists and ground truth are read by :mod:`modalink.face_voice.lists` (one reader for the
recipes and the submission tools). Formats (one record per line, fields separated by whitespace):

* pair list ``<Lang>_test.txt``:      ``key voices/English/00000.wav faces/English/00000.jpg``
* ground truth ``<Lang>_test.txt``:   ``key label`` with label 1 (same person) or 0
* score file (submission):           ``key score``, the score a DISTANCE (lower = same person)
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from challenge.naming import VERSIONS, version_langs
from modalink.face_voice.layout import LIST_SUFFIX, FeatureFileError, list_file_name
from modalink.face_voice.lists import ground_truth_lines, read_ground_truth, read_pairs
from modalink.errors import InputError, UserError

__all__ = [
    "ChallengeError", "FormatError", "read_pairs", "read_pair_keys", "read_ground_truth",
    "ground_truth_lines", "read_score_values", "write_scores", "format_scores", "find_lists", "list_file_name",
    "NUMBER_RE",
]

#: A plain decimal number (what a score field must look like); nan/inf are rejected separately.
NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class ChallengeError(UserError):
    """Base class of the challenge tools' errors."""


class FormatError(ChallengeError, FeatureFileError):
    """A malformed input file; the message names the file and the line. (The list readers of
    :mod:`modalink.face_voice.lists` raise its base, :class:`FeatureFileError`.)"""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.detail = message
        FeatureFileError.__init__(self, path, message, line)


def read_pair_keys(path: str | os.PathLike) -> list[str]:
    """The keys of a FAME pair list, in file order (see :func:`read_pairs`)."""
    return [p.key for p in read_pairs(path)]


def read_score_values(path: str | os.PathLike, keys: Sequence[str] | None = None) -> np.ndarray:
    """Load scores to write with :func:`write_scores`, aligned with ``keys``.

    * ``.npy``: a 1-D array (or N×1), one score per pair-list key, in pair-list order;
    * text with one number per line: the same, as text;
    * text with ``key score`` lines (a score file): reordered to ``keys`` (required then);
      unknown, duplicate or missing keys are errors.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, None, "file not found")
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise FormatError(path, None, f"expected a 1-D array of scores, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise FormatError(path, None, f"expected real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise FormatError(path, None, f"{bad.size} non-finite score(s), the first at index {int(bad[0])}: "
                                          f"{arr[bad[0]]}; scores must be finite numbers")
        return arr
    text = path.read_text(encoding="utf-8-sig")
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not rows:
        raise FormatError(path, None, "no scores in file")
    widths = {len(f) for _, f in rows}
    if widths == {1}:
        values = []
        for n, (raw,) in rows:
            values.append(_parse_number(path, n, raw))
        return np.asarray(values, dtype=np.float64)
    if widths == {2}:
        if keys is None:
            raise FormatError(path, None, "file has 'key score' lines: pass the pair list to align them")
        by_key: dict[str, float] = {}
        for n, (key, raw) in rows:
            if key in by_key:
                raise FormatError(path, n, f"duplicate key {key!r}")
            by_key[key] = _parse_number(path, n, raw)
        known = set(keys)
        unknown = [k for k in by_key if k not in known]
        if unknown:
            raise FormatError(path, None, f"{len(unknown)} key(s) not in the pair list, e.g. {unknown[0]!r}")
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise FormatError(path, None, f"{len(missing)} pair-list key(s) have no score, e.g. {missing[0]!r}")
        return np.asarray([by_key[k] for k in keys], dtype=np.float64)
    bad = next((n, f) for n, f in rows if len(f) not in (1, 2) or len(f) != len(rows[0][1]))
    raise FormatError(path, bad[0], f"expected one number or 'key score' per line, found {len(bad[1])} fields")


def _parse_number(path: Path, lineno: int, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FormatError(path, lineno, f"not a number: {raw!r}") from None
    if not np.isfinite(value):
        raise FormatError(path, lineno, f"non-finite score {raw!r}; scores must be finite numbers")
    return value


def format_scores(keys: Sequence[str], scores: Any, where: str = "scores") -> str:
    """``key score`` lines for a score file, after checking keys and scores.

    Scores are written with 9 significant digits (float32 values round-trip exactly).
    Raises ValueError on a length mismatch, a non-finite score (naming the key), an empty,
    duplicate or whitespace-containing key.
    """
    arr = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InputError(f"{where}: scores must be 1-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{where}: scores must be real numbers, got dtype {arr.dtype}")
    keys = [str(k) for k in keys]
    if len(keys) != arr.shape[0]:
        raise InputError(f"{where}: {len(keys)} keys but {arr.shape[0]} scores")
    if not keys:
        raise InputError(f"{where}: no keys")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{where}: {bad.size} non-finite score(s), first for key {keys[i]!r} "
                         f"(index {i}): {arr[i]}")
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        if not key or key.split() != [key]:
            raise InputError(f"{where}: key {key!r} (index {i}) is empty or contains whitespace")
        if key in seen:
            raise InputError(f"{where}: duplicate key {key!r} (index {seen[key]} and {i})")
        seen[key] = i
    return "".join(f"{k} {format(float(s), '.9g')}\n" for k, s in zip(keys, arr))


def write_scores(path: str | os.PathLike, keys: Sequence[str], scores: Any) -> Path:
    """Write a score file (``key score`` lines) atomically; see :func:`format_scores` for the checks.

    ``scores`` (list, NumPy array or torch tensor) must be DISTANCES: lower = same person.
    """
    from modalink.io import atomic_write_text

    text = format_scores(keys, scores, where=str(path))
    return atomic_write_text(path, text)


def find_lists(directory: str | os.PathLike, ver: str | None = None, langs: Sequence[str] | None = None,
               what: str = "pair list") -> dict[str, Path]:
    """Locate ``<Lang>_test.txt`` files in ``directory`` and return ``{Lang: path}``.

    ``directory`` may be the folder of one version or the root holding ``v1/ v2/ v3/``
    (then ``ver`` picks the subfolder). Languages come from ``langs``, else from ``ver``,
    else from the files found (exactly two needed). Language names match file names
    case-insensitively; the spelling of the file wins. Raises ChallengeError with what
    was found and how to fix it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ChallengeError(f"{what} folder not found: {directory}")
    if ver is not None and langs is not None:
        raise ChallengeError("give either a version or explicit languages, not both")
    subs = sorted(d.name for d in directory.iterdir() if d.is_dir() and d.name.lower() in VERSIONS)
    if ver is not None:
        wanted = list(version_langs(ver))
        sub = directory / ver.strip().lower()
        if sub.is_dir():
            directory = sub
        elif subs:
            raise ChallengeError(
                f"this {what} folder has version folders {', '.join(subs)} only, not {ver}: {directory}; pass "
                f"--ver {subs[0]}" + (" (or another of them)" if len(subs) > 1 else "")
                + f" or the {what} folder of {ver}")
    else:
        wanted = list(langs) if langs is not None else None
    found = {p.name[: -len(LIST_SUFFIX)]: p for p in sorted(directory.glob(f"*{LIST_SUFFIX}")) if p.is_file()}
    if not found:
        hint = f" (it has version folders {', '.join(subs)}: pass --ver with one of them)" if subs else ""
        raise ChallengeError(f"no <Lang>_test.txt {what}s in {directory}{hint}")
    if wanted is None:
        if len(found) != 2:
            raise ChallengeError(
                f"found {len(found)} {what}s in {directory} ({', '.join(found)}); "
                "pass --ver or --langs to say which two languages the submission covers")
        return dict(found)
    by_lower = {lang.lower(): (lang, p) for lang, p in found.items()}
    out: dict[str, Path] = {}
    for lang in wanted:
        hit = by_lower.get(lang.lower())
        if hit is None:
            have = {x.lower() for x in found}
            fits = [v for v, pair in VERSIONS.items() if {x.lower() for x in pair} <= have]
            hint = ""
            if ver is not None and fits:
                hint = f": these are the lists of {', '.join(fits)}, not {ver}; pass --ver {fits[0]}"
            raise ChallengeError(
                f"no {what} for {lang} in {directory}: expected {list_file_name(lang)} "
                f"(found: {', '.join(p.name for p in found.values())}){hint}")
        out[hit[0]] = hit[1]
    if len(out) < 2:
        raise ChallengeError(f"a FAME submission needs two languages, got {wanted}")
    return out
