"""``manifest.json``: what a submission folder is made of, so that a set is checked as a set.

Written by :func:`challenge.write_submission` (a whole set, staged then swapped in) and
updated by ``python -m challenge write`` (one file at a time). It holds no time stamp: the same
scores give the same bytes. For every score file it
records the line count, the SHA-256 of its bytes and the (train, test, condition) entry it
belongs to; a set written by a recipe also records the model and config fingerprint.
``validate`` checks a folder (or zip) against it: a file changed after it was written, a
file listed but missing, or a score file that is not part of the set (left over from another
run) is an error. The manifest itself is never part of the zip that ``pack`` writes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from challenge.files import ChallengeError

__all__ = ["MANIFEST_NAME", "ManifestError", "file_record", "read_manifest", "write_manifest", "check_manifest",
           "manifest_problems", "parse_manifest"]

MANIFEST_NAME = "manifest.json"
FORMAT = 1

#: The fields every file record holds, and their types.
RECORD_FIELDS: dict[str, type] = {"train_lang": str, "test_lang": str, "condition": str, "lines": int, "sha256": str}
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ChallengeError, ValueError):
    """A ``manifest.json`` that cannot be read or does not follow the manifest schema."""


def manifest_problems(data: Any) -> list[str]:
    """What in a parsed ``manifest.json`` breaks the schema (empty when it is a valid manifest):
    an object with a ``files`` object of file name → record, each record an object with
    ``train_lang``/``test_lang``/``condition`` (strings), ``lines`` (integer) and ``sha256``
    (64 hex digits); other keys are allowed."""
    if not isinstance(data, dict):
        return [f"top level is {type(data).__name__}, not an object"]
    files = data.get("files")
    if not isinstance(files, dict):
        return ["no 'files' table" if files is None else f"'files' is {type(files).__name__}, not an object"]
    problems = []
    for name, rec in files.items():
        if not isinstance(rec, dict):
            problems.append(f"the record of {name!r} is {type(rec).__name__}, not an object")
            continue
        for key, tp in RECORD_FIELDS.items():
            value = rec.get(key)
            if not isinstance(value, tp) or isinstance(value, bool):
                got = "missing" if key not in rec else f"{type(value).__name__} {value!r}"
                problems.append(f"the record of {name!r} needs {key!r} ({tp.__name__}), got {got}")
        sha = rec.get("sha256")
        if isinstance(sha, str) and not _SHA256_RE.match(sha):
            problems.append(f"the record of {name!r} has a 'sha256' that is not 64 hex digits")
    return problems


def parse_manifest(raw: bytes, where: str | os.PathLike | None = None) -> dict[str, Any]:
    """A manifest from its bytes, checked against the schema (:func:`manifest_problems`);
    :class:`ManifestError` names ``where`` (when given) and the first problem."""
    prefix = f"{where}: " if where is not None else ""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{prefix}damaged ({exc}); delete it or write the submission again") from None
    problems = manifest_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ManifestError(f"{prefix}not a valid submission manifest: {problems[0]}{more}; delete it or "
                            "write the submission again")
    return data


def file_record(data: bytes, train_lang: str, test_lang: str, condition: str, **extra: Any) -> dict[str, Any]:
    """The manifest record of one score file's bytes."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return {"train_lang": train_lang, "test_lang": test_lang, "condition": condition, "lines": lines,
            "sha256": hashlib.sha256(data).hexdigest(), **extra}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's manifest, ``None`` when there is none; :class:`ManifestError` names a damaged
    one or one that breaks the schema."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    return parse_manifest(path.read_bytes(), path)


def manifest_text(files: Mapping[str, Mapping[str, Any]], **info: Any) -> str:
    body = {"format": FORMAT, **info,
            "files": {k: dict(v) for k, v in sorted(files.items())}}
    return json.dumps(body, indent=1, sort_keys=False) + "\n"


def write_manifest(folder: str | os.PathLike, files: Mapping[str, Mapping[str, Any]], **info: Any) -> Path:
    """Write (atomically) the manifest of ``folder``."""
    from modalink.io import atomic_write_text

    return atomic_write_text(Path(folder) / MANIFEST_NAME, manifest_text(files, **info))


def check_manifest(manifest: Mapping[str, Any], present: Mapping[str, bytes]) -> list[tuple[str, str, str]]:
    """``[(file, kind, problem)]`` for files that do not match ``manifest`` (``present``: name →
    bytes of the submission's score files); ``kind`` is ``missing``, ``changed`` or ``foreign``."""
    problems: list[tuple[str, str, str]] = []
    listed = manifest.get("files", {})
    for name, rec in sorted(listed.items()):
        if name not in present:
            problems.append((name, "missing", "listed in manifest.json but missing: the set is incomplete (a run "
                                              "stopped while writing it?); write the submission again"))
            continue
        data = present[name]
        if hashlib.sha256(data).hexdigest() != rec.get("sha256"):
            problems.append((name, "changed", "changed since manifest.json was written (not the file the run "
                                              "wrote); write the submission again, or delete manifest.json if "
                                              "you edited it on purpose"))
    for name in sorted(set(present) - set(listed)):
        problems.append((name, "foreign", "not part of the set recorded in manifest.json (left over from another "
                                          "run or model?); remove it or write the submission again"))
    return problems
