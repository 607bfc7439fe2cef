"""Write a FAME submission folder: one ``key score`` file per (train, test) language pair."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from challenge.files import ChallengeError, format_scores
from challenge.naming import Edition, SubmissionEntry, condition_for, get_edition
from modalink.errors import InputError
from modalink.face_voice.layout import LIST_SUFFIX, list_file_name

__all__ = ["write_submission"]


def _entry(key: Sequence[str]) -> SubmissionEntry:
    if len(key) == 2:
        train, test = key
        return SubmissionEntry(train, test, condition_for(train, test))
    if len(key) == 3:
        train, test, cond = key
        expected = condition_for(train, test)
        if cond != expected:
            raise InputError(f"entry {tuple(key)}: condition must be {expected!r} for train={train!r}, test={test!r}")
        return SubmissionEntry(train, test, cond)
    raise InputError(f"entry keys are (train_lang, test_lang[, condition]), got {key!r}")


def _refuse_foreign_folder(out_dir: Path) -> None:
    """The whole folder is replaced: refuse unless it is a submission folder modalink wrote (its
    manifest lists every score file in it), so a user's own folder is never emptied."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ChallengeError(f"{out_dir} exists and is not a folder; choose another output folder")
    from challenge.manifest import MANIFEST_NAME, ManifestError, read_manifest
    from modalink.io import foreign_entries

    present = sorted(p.name for p in out_dir.iterdir())
    try:
        manifest = read_manifest(out_dir)
    except (OSError, ManifestError):
        manifest = None
    listed = None if manifest is None else set(manifest["files"])
    if listed is None:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ChallengeError(f"{out_dir} exists and was not written by modalink (no readable {MANIFEST_NAME}"
                             + (f"; it holds {shown}" if present else "") + "): nothing was written; choose another "
                             "output folder, or move or delete it yourself")
    foreign = foreign_entries(out_dir, listed | {MANIFEST_NAME})
    if foreign:
        raise ChallengeError(f"{out_dir} holds files its {MANIFEST_NAME} does not list ({', '.join(foreign[:5])}): "
                             "nothing was written; move them out, or choose another output folder")


def write_submission(out_dir: str | os.PathLike,
                     entries: Mapping[tuple[str, ...], tuple[Sequence[str], Any]],
                     edition: str | Edition | None = None, template: str | None = None,
                     pairs_dir: str | os.PathLike | None = None,
                     info: Mapping[str, Any] | None = None) -> dict[SubmissionEntry, Path]:
    """Write the score files of a submission into ``out_dir``.

    ``entries`` maps ``(train_lang, test_lang, condition)`` (condition optional) to
    ``(keys, scores)``; scores are DISTANCES (lower = same person) as a list, NumPy array or
    tensor aligned with ``keys``. File names follow ``edition`` (``"2026"`` default, ``"2024"``)
    or ``template``. When ``pairs_dir`` is given, each entry's keys must be exactly the keys
    of ``<pairs_dir>/<test_lang>_test.txt``.

    Every entry is checked (lengths, finite scores, unique keys, names) before any file is
    written. The folder is then written as a WHOLE: the files and a ``manifest.json`` (line
    counts, SHA-256, entries, and ``info`` such as the model and config fingerprint) are staged
    in a temporary sibling folder that replaces ``out_dir`` in one rename, so a crash never leaves
    a mix of new and old files. Returns ``{entry: path}``.
    """
    ed = get_edition(edition, template)
    out_dir = Path(out_dir)
    texts: dict[SubmissionEntry, tuple[str, str]] = {}
    names: dict[str, SubmissionEntry] = {}
    if not entries:
        raise InputError("write_submission: no entries to write")
    for key, value in entries.items():
        entry = _entry(key)
        try:
            keys, scores = value
        except (TypeError, ValueError):
            raise InputError(f"entry {entry}: value must be (keys, scores)") from None
        name = ed.file_name(*entry)
        if name in names:
            raise InputError(f"entries {names[name]} and {entry} both map to {name!r} with template {ed.template!r}")
        names[name] = entry
        text = format_scores(keys, scores, where=f"{name} ({entry.train_lang}->{entry.test_lang})")
        if pairs_dir is not None:
            _check_keys(keys, pairs_dir, entry, name)
        texts[entry] = (name, text)

    from challenge.manifest import MANIFEST_NAME, file_record, manifest_text
    from modalink.errors import failpoint
    from modalink.io import atomic_dir

    _refuse_foreign_folder(out_dir)
    records = {name: file_record(text.encode("utf-8"), *entry) for entry, (name, text) in texts.items()}
    with atomic_dir(out_dir) as stage:
        for name, text in (v for v in texts.values()):
            (stage / name).write_text(text, encoding="utf-8")
            failpoint("submission.between_files")
        (stage / MANIFEST_NAME).write_text(manifest_text(records, **dict(info or {})), encoding="utf-8")
        for f in stage.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    return {entry: out_dir / name for entry, (name, _) in texts.items()}


def _check_keys(keys: Sequence[str], pairs_dir: str | os.PathLike, entry: SubmissionEntry, name: str) -> None:
    from challenge.files import read_pair_keys

    lists = {p.name.lower(): p for p in Path(pairs_dir).glob(f"*{LIST_SUFFIX}")}
    list_path = lists.get(list_file_name(entry.test_lang).lower())
    if list_path is None:
        raise InputError(f"{name}: no pair list {entry.test_lang}_test.txt in {pairs_dir}")
    expected = read_pair_keys(list_path)
    got = [str(k) for k in keys]
    known = set(expected)
    unknown = [k for k in got if k not in known]
    if unknown:
        raise InputError(f"{name}: {len(unknown)} key(s) not in {list_path}, e.g. {unknown[0]!r}")
    have = set(got)
    missing = [k for k in expected if k not in have]
    if missing:
        raise InputError(f"{name}: {len(missing)} key(s) of {list_path} have no score, e.g. {missing[0]!r}")
