"""Scanning the raw MAV-Celeb release (images and wavs) and pairing faces with voices.

Layouts (paths relative to a split root that holds ``faces/`` and ``voices/``):

* training: ``{faces,voices}/<identity>/<Language>/<video>/<clip>.{jpg,wav}``
* test:     ``{faces,voices}/<Language>/NNNNN.{jpg,wav}`` plus pair lists
  ``<Language>_test.txt`` with lines ``key voices/<Language>/NNNNN.wav faces/<Language>/NNNNN.jpg``.

Training pairing rule (:func:`pair_train_clips`), deterministic, one pair per voice clip:
for each (identity, language), voices and faces are sorted by (video, clip); the k-th voice clip
of video V is paired with face ``F_V[k mod |F_V|]`` where ``F_V`` are that identity's face images
from the same video; when the video has no face images, the j-th voice clip of the identity is
paired with ``F[j mod |F|]`` over all its face images in that language. Voices of an
(identity, language) with no face image at all are left unpaired (counted, not fatal).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, NamedTuple, Sequence

from modalink.data.fame_csv import read_pair_list

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
AUDIO_EXTS = frozenset({".wav", ".flac"})
Modality = Literal["faces", "voices"]
_EXTS = {"faces": IMAGE_EXTS, "voices": AUDIO_EXTS}


class RawLayoutError(ValueError):
    """The raw data folder does not have the expected MAV-Celeb layout."""


@dataclass(frozen=True, order=True)
class TrainClip:
    """One training file; ``relpath`` is relative to the training root, with ``/`` separators."""

    identity: str
    language: str
    video: str
    clip: str
    relpath: str


@dataclass(frozen=True)
class TrainPair:
    """One (face, voice) training row."""

    identity: str
    language: str
    face: TrainClip
    voice: TrainClip
    same_video: bool


@dataclass
class PairingResult:
    """Output of :func:`pair_train_clips`."""

    pairs: list[TrainPair]
    unpaired_voices: list[TrainClip] = field(default_factory=list)
    groups_without_faces: list[tuple[str, str]] = field(default_factory=list)
    cross_video_pairs: int = 0


class TestPair(NamedTuple):
    """One test trial: ``voice``/``face`` are relative to the test root (as in the list)."""

    key: str
    voice: str
    face: str


@dataclass(frozen=True)
class RawLayout:
    """Where the parts of a raw MAV-Celeb release are."""

    train_root: Path | None
    test_root: Path | None
    pair_lists: dict[str, Path]


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX")


def scan_train_split(train_root: str | os.PathLike, modality: Modality,
                     languages: Iterable[str] | None = None) -> list[TrainClip]:
    """All ``<modality>/<identity>/<Language>/<video>/<clip>.<ext>`` files, sorted.

    Files with other extensions and hidden files are ignored; a file of the right type at the
    wrong depth raises :class:`RawLayoutError` naming it. ``languages`` filters folder names.
    """
    root = Path(train_root)
    base = root / modality
    if not base.is_dir():
        raise RawLayoutError(f"{base}: missing the training '{modality}' folder")
    wanted = set(languages) if languages is not None else None
    exts = _EXTS[modality]
    clips: list[TrainClip] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in filenames:
            if _is_hidden(name) or Path(name).suffix.lower() not in exts:
                continue
            rel = Path(dirpath, name).relative_to(root)
            parts = rel.parts
            if len(parts) != 5:
                raise RawLayoutError(
                    f"{root / rel}: expected {modality}/<identity>/<Language>/<video>/<clip>"
                    f"{sorted(exts)[0]} under {root}, found depth {len(parts) - 1}"
                )
            _, identity, language, video, _ = parts
            if wanted is not None and language not in wanted:
                continue
            clips.append(TrainClip(identity, language, video, Path(name).stem, rel.as_posix()))
    clips.sort()
    return clips


def pair_train_clips(faces: Sequence[TrainClip], voices: Sequence[TrainClip]) -> PairingResult:
    """Pair every voice clip with a face image of the same identity and language (see module doc)."""
    by_group: dict[tuple[str, str], list[TrainClip]] = {}
    by_video: dict[tuple[str, str, str], list[TrainClip]] = {}
    for f in sorted(faces):
        by_group.setdefault((f.identity, f.language), []).append(f)
        by_video.setdefault((f.identity, f.language, f.video), []).append(f)
    result = PairingResult(pairs=[])
    voices_by_group: dict[tuple[str, str], list[TrainClip]] = {}
    for v in sorted(voices):
        voices_by_group.setdefault((v.identity, v.language), []).append(v)
    for group, vlist in sorted(voices_by_group.items()):
        gfaces = by_group.get(group)
        if not gfaces:
            result.unpaired_voices.extend(vlist)
            result.groups_without_faces.append(group)
            continue
        per_video_count: dict[str, int] = {}
        for j, v in enumerate(vlist):
            vfaces = by_video.get((v.identity, v.language, v.video))
            if vfaces:
                k = per_video_count.get(v.video, 0)
                per_video_count[v.video] = k + 1
                face, same = vfaces[k % len(vfaces)], True
            else:
                face, same = gfaces[j % len(gfaces)], False
                result.cross_video_pairs += 1
            result.pairs.append(TrainPair(v.identity, v.language, face, v, same))
    return result


_ID_RE = re.compile(r"^id0*(\d+)$")


def identity_labels(identities: Iterable[str]) -> dict[str, int | str]:
    """Label written in the CSVs' last column: the number of ``idNNNN`` names (all must match,
    and be distinct as numbers), else the identity name itself."""
    names = sorted(set(identities))
    nums = [_ID_RE.match(n) for n in names]
    if names and all(nums) and len({int(m.group(1)) for m in nums if m}) == len(names):
        return {n: int(m.group(1)) for n, m in zip(names, nums) if m}
    return {n: n for n in names}


def read_test_pairs(path: str | os.PathLike) -> list[TestPair]:
    """Read a ``<Lang>_test.txt`` pair list in file order (the strict reader of
    :mod:`modalink.data.fame_csv`: errors name file and line)."""
    return [TestPair(e.key, e.voice_path, e.face_path) for e in read_pair_list(path)]


def _looks_like(split_root: Path, kind: Literal["train", "test"]) -> bool:
    """Train roots hold files 4 levels below ``faces/``; test roots hold files 2 levels below."""
    faces = split_root / "faces"
    if not (faces.is_dir() and (split_root / "voices").is_dir()):
        return False
    depth = 4 if kind == "train" else 2
    for dirpath, dirnames, filenames in os.walk(faces):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        if any(Path(f).suffix.lower() in IMAGE_EXTS for f in filenames):
            return len(Path(dirpath).relative_to(faces).parts) == depth - 1
    return False


def _candidate_split_roots(raw_root: Path, max_depth: int = 3) -> list[Path]:
    found = []
    for dirpath, dirnames, _ in os.walk(raw_root):
        here = Path(dirpath)
        rel_depth = len(here.relative_to(raw_root).parts)
        if "faces" in dirnames and "voices" in dirnames:
            found.append(here)
        dirnames[:] = [] if rel_depth >= max_depth else sorted(
            d for d in dirnames if not _is_hidden(d) and d not in ("faces", "voices"))
    return found


def find_raw_layout(raw_root: str | os.PathLike, languages: Sequence[str], *,
                    train_root: str | os.PathLike | None = None,
                    test_root: str | os.PathLike | None = None,
                    splits_dir: str | os.PathLike | None = None) -> RawLayout:
    """Locate the training root, test root and ``<Lang>_test.txt`` pair lists under ``raw_root``.

    Folders holding both ``faces/`` and ``voices/`` (up to 3 levels down) are classified by the
    depth of their image files; explicit ``train_root``/``test_root``/``splits_dir`` win. Pair
    lists are searched in ``splits_dir`` or anywhere under ``raw_root`` (first match, sorted).
    Raises :class:`RawLayoutError` when neither a training nor a test root is found, or when
    the choice is ambiguous.
    """
    raw = Path(raw_root)
    if not raw.is_dir():
        raise RawLayoutError(f"raw data folder not found: {raw}")
    cands = _candidate_split_roots(raw)

    def pick(kind: Literal["train", "test"], explicit: str | os.PathLike | None) -> Path | None:
        if explicit is not None:
            p = Path(explicit)
            if not _looks_like(p, kind):
                raise RawLayoutError(f"{p}: not a MAV-Celeb {kind} folder (faces/ and voices/ with the "
                                     f"{kind} layout)")
            return p
        hits = [c for c in cands if _looks_like(c, kind)]
        if len(hits) > 1:
            raise RawLayoutError(f"several {kind} folders under {raw}: {', '.join(map(str, hits))}; "
                                 f"choose one with --{kind}-root")
        return hits[0] if hits else None

    train = pick("train", train_root)
    test = pick("test", test_root)
    if train is None and test is None:
        raise RawLayoutError(
            f"{raw}: found neither a training folder ({{faces,voices}}/<id>/<Language>/<video>/<clip>) "
            f"nor a test folder ({{faces,voices}}/<Language>/NNNNN)")
    lists: dict[str, Path] = {}
    search = Path(splits_dir) if splits_dir is not None else raw
    if splits_dir is not None and not search.is_dir():
        raise RawLayoutError(f"splits folder not found: {search}")
    for lang in languages:
        matches = sorted(search.rglob(f"{lang}_test.txt"))
        if matches:
            lists[lang] = matches[0]
    return RawLayout(train, test, lists)
