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
from pathlib import Path
from typing import Any, Mapping

__all__ = ["MANIFEST_NAME", "file_record", "read_manifest", "write_manifest", "check_manifest"]

MANIFEST_NAME = "manifest.json"
FORMAT = 1


def file_record(data: bytes, train_lang: str, test_lang: str, condition: str, **extra: Any) -> dict[str, Any]:
    """The manifest record of one score file's bytes."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return {"train_lang": train_lang, "test_lang": test_lang, "condition": condition, "lines": lines,
            "sha256": hashlib.sha256(data).hexdigest(), **extra}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's manifest, ``None`` when there is none; ValueError names a damaged one."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is damaged ({exc}); delete it or rewrite the submission") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path} is not a submission manifest (no 'files' table)")
    return data


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
