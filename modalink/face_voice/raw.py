"""The raw MAV-Celeb release: scanning it, pairing faces with voices, and the encoders of raw files.

Shared by ``recipes/fame/prepare.py`` (raw files → the official feature CSV layout) and the
raw-media verifier (:mod:`modalink.face_voice.verify`), so both build the same encoders
(:class:`RawEncoderSettings` / :func:`build_raw_encoders`) and embed a file exactly the same way
(:func:`modalink.encoders.embed_files.embed_files`). Audio files of every format the audio loader decodes
(:data:`modalink.audio.AUDIO_EXTENSIONS`: wav, flac, mp3, ogg ...) are scanned.

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
from typing import TYPE_CHECKING, Any, Collection, Iterable, Literal, NamedTuple, Sequence

from modalink.audio import AUDIO_EXTENSIONS
from modalink.face_voice.layout import FEATURE_INFO, list_file_name
from modalink.face_voice.lists import read_pairs
from modalink.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from modalink.encoders import Encoder

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_EXTS = AUDIO_EXTENSIONS
Modality = Literal["faces", "voices"]
_EXTS = {"faces": IMAGE_EXTS, "voices": AUDIO_EXTS}


class RawLayoutError(UserError, ValueError):
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


def valid_name(path: str | os.PathLike) -> bool:
    """Whether ``path`` is valid UTF-8 text (a name made of other bytes reaches Python as
    surrogate escapes, which no CSV, JSON or log line can hold)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_train_split(train_root: str | os.PathLike, modality: Modality,
                     languages: Iterable[str] | None = None, ignored: list[str] | None = None) -> list[TrainClip]:
    """All ``<modality>/<identity>/<Language>/<video>/<clip>.<ext>`` files, sorted.

    Hidden files and names that are not valid UTF-8 are skipped; files whose extension the
    loaders cannot read are skipped too and, when ``ignored`` is a list, appended to it (paths relative to ``train_root``) so they can be
    reported. A file of the right type at the wrong depth raises :class:`RawLayoutError` naming
    it. ``languages`` filters folder names.
    """
    root = Path(train_root)
    base = root / modality
    if not base.is_dir():
        raise RawLayoutError(f"{base}: missing the training '{modality}' folder")
    wanted = set(languages) if languages is not None else None
    exts = _EXTS[modality]
    clips: list[TrainClip] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d) and valid_name(d))
        for name in sorted(filenames):
            if _is_hidden(name) or not valid_name(name):  # reported by account_raw_files
                continue
            rel = Path(dirpath, name).relative_to(root)
            if Path(name).suffix.lower() not in exts:
                if ignored is not None:
                    ignored.append(rel.as_posix())
                continue
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
    :mod:`modalink.face_voice.lists`: errors name file and line)."""
    return [TestPair(e.key, e.voice_path, e.face_path) for e in read_pairs(path)]


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
        matches = sorted(search.rglob(list_file_name(lang)))
        if matches:
            lists[lang] = matches[0]
    return RawLayout(train, test, lists)


# ----------------------------------------------------------------------------- every file accounted for


class RawEntry(NamedTuple):
    """One entry of :func:`walk_raw_files`: ``hidden`` when a part of its path below the walked
    root is hidden; ``folder_link`` for a symbolic link to a folder (not followed)."""

    path: Path
    hidden: bool = False
    folder_link: bool = False


class FileVerdict(NamedTuple):
    """What became of one raw file: ``status`` is ``used``, ``skipped`` (it should have been used
    and could not) or ``ignored`` (not something prepare.py reads); ``reason`` is a short tag."""

    status: Literal["used", "skipped", "ignored"]
    reason: str
    detail: str = ""
    part: str = ""
    modality: str = ""


def walk_raw_files(roots: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()) -> list[RawEntry]:
    """Every entry under ``roots`` that is not a folder (files, links of any kind, hidden ones
    too), plus the symbolic links to folders, which are not followed; the files and folders in
    ``exclude`` (modalink's own outputs) are left out. Roots inside another root are walked once. Sorted."""
    skip = {os.path.abspath(e) for e in exclude}
    tops = sorted({os.path.abspath(r) for r in roots})
    tops = [t for t in tops if not any(t != o and t.startswith(o.rstrip(os.sep) + os.sep) for o in tops)]
    out: list[RawEntry] = []
    for top in tops:
        if not os.path.isdir(top):
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            rel_parts = Path(dirpath).relative_to(top).parts
            hidden_here = any(_is_hidden(x) for x in rel_parts)
            keep = []
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if full in skip:
                    continue
                if os.path.islink(full):
                    out.append(RawEntry(Path(full), hidden_here or _is_hidden(d), True))
                    continue
                keep.append(d)
            dirnames[:] = sorted(keep)
            out.extend(RawEntry(Path(dirpath, f), hidden_here or _is_hidden(f)) for f in filenames
                       if os.path.join(dirpath, f) not in skip)
    return sorted(out)


def _below(path: Path, folder: Path | None) -> tuple[str, ...] | None:
    if folder is None:
        return None
    try:
        return path.relative_to(folder).parts
    except ValueError:
        return None


def why_not_used(entry: RawEntry, layout: RawLayout, languages: Sequence[str],
                 parts: Collection[str]) -> FileVerdict:
    """Why a file under the raw root that prepare.py did not take up is left out: by its name
    (not valid UTF-8), its kind (hidden, a link to a folder, a link loop) or where it sits
    (another language, a split not prepared, no pair list naming it, outside the layout)."""
    from modalink.encoders.embed_files import unreadable_file

    path = entry.path
    part = modality = ""
    rel: tuple[str, ...] = ()
    for kind, root in (("train", layout.train_root), ("test", layout.test_root)):
        below = _below(path, root)
        if below and len(below) > 1 and below[0] in ("faces", "voices"):
            part, modality, rel = kind, below[0][:-1], below
            break

    def verdict(status: Literal["skipped", "ignored"], reason: str, detail: str) -> FileVerdict:
        return FileVerdict(status, reason, detail, part, modality)

    if not valid_name(path):
        return verdict("skipped", "bad_file_name", "the file name is not valid UTF-8; rename it (e.g. with convmv) "
                       "to use the file")
    if entry.folder_link:
        return verdict("ignored", "folder_link", "a symbolic link to a folder, not followed; put the folder itself "
                       "there to use its files")
    if entry.hidden:
        return verdict("ignored", "hidden_file", "hidden file or folder (a name starting with '.' or __MACOSX)")
    bad = unreadable_file(path)
    if bad is not None and bad.reason in ("symlink_loop", "broken_link", "unreadable_file"):
        return verdict("skipped", bad.reason, bad.detail)
    if path in layout.pair_lists.values():
        return verdict("ignored", "part_not_prepared", "a pair list, but --parts leaves the test split out")
    where = f"the {part} folder's {modality}s/" if part else ""
    if part and part not in parts:
        return verdict("ignored", "part_not_prepared", f"in {where}, but --parts leaves the {part} split out")
    if part and Path(path.name).suffix.lower() not in _EXTS[f"{modality}s"]:  # type: ignore[index]
        return verdict("ignored", "unsupported_format", f"{Path(path.name).suffix or 'no extension'} is not a "
                       f"format the {'image' if modality == 'face' else 'audio'} loader reads")
    if part == "train":
        language = rel[2] if len(rel) == 5 else "?"
        if language not in languages:
            return verdict("ignored", "other_language", f"language folder {language!r} is not one of this version's "
                           f"({', '.join(languages)})")
        return verdict("ignored", "not_used", f"in {where} but not taken up")
    if part == "test":
        lists = " or ".join(list_file_name(lang) for lang in languages)
        return verdict("ignored", "not_in_pair_list", f"no line of {lists} names it")
    return verdict("ignored", "outside_layout", "not in a folder prepare.py reads (the training and test folders' "
                   "faces/ and voices/, the <Language>_test.txt pair lists)")


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


# ----------------------------------------------------------------------------- encoders for raw media


@dataclass
class RawEncoderSettings:
    """Which encoders turn raw faces and voices into features, and how (recorded in
    ``feature_info.json`` by prepare.py, read back by the raw-media verifier)."""

    face_encoder: str = "facenet_vggface2"
    voice_encoder: str = "ecapa_voxceleb"
    face_weights: str | None = None
    voice_weights: str | None = None
    face_args: dict[str, Any] = field(default_factory=dict)
    voice_args: dict[str, Any] = field(default_factory=dict)
    no_face: str = "center_crop"
    min_seconds: float = 0.5
    random_weights: bool = False
    seed: int = 0

    def to_info(self, face: "Encoder", voice: "Encoder") -> dict[str, Any]:
        """The ``face_encoder`` / ``voice_encoder`` entries of ``feature_info.json``."""
        return {
            "face_encoder": {"name": self.face_encoder, "weights": face.weights_path, "args": self.face_args,
                             "contract": face.contract.to_dict(), "no_face": self.no_face,
                             "random_weights": self.random_weights, "seed": self.seed},
            "voice_encoder": {"name": self.voice_encoder, "weights": voice.weights_path, "args": self.voice_args,
                              "contract": voice.contract.to_dict(), "min_seconds": self.min_seconds,
                              "random_weights": self.random_weights, "seed": self.seed + 1},
        }

    @classmethod
    def from_info(cls, info: dict[str, Any], where: str = FEATURE_INFO) -> "RawEncoderSettings":
        """Settings from a ``feature_info.json`` written by prepare.py; :class:`RawLayoutError` naming
        ``where`` when it lacks the encoder entries (features made some other way)."""
        try:
            f, v = info["face_encoder"], info["voice_encoder"]
            return cls(face_encoder=str(f["name"]), voice_encoder=str(v["name"]), face_weights=f.get("weights"),
                       voice_weights=v.get("weights"), face_args=dict(f.get("args") or {}),
                       voice_args=dict(v.get("args") or {}), no_face=str(f.get("no_face", "center_crop")),
                       min_seconds=float(v.get("min_seconds", 0.5)),
                       random_weights=bool(f.get("random_weights", False)), seed=int(f.get("seed", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise RawLayoutError(f"{where}: does not say which encoders made the features ({_short(e)}); "
                                 "it must come from recipes/fame/prepare.py") from None


def build_raw_encoders(s: RawEncoderSettings, *, offline: bool | None = None,
                       face_weights_option: str = "--face-weights", voice_weights_option: str = "--voice-weights",
                       ) -> tuple["Encoder", "Encoder"]:
    """The face and voice encoders of ``s`` in eval mode (random weights seeded by ``seed`` /
    ``seed + 1``). Missing weights of BOTH encoders are reported together in one
    :class:`~modalink.encoders.base.MissingWeightsError` naming the ``*_weights_option`` settings."""
    import torch

    from modalink.encoders import create_encoder
    from modalink.encoders.base import build_all

    if s.no_face not in ("skip", "center_crop"):
        raise UserError(f"no_face must be skip or center_crop, got {s.no_face!r}")
    pretrained = not s.random_weights

    def face() -> "Encoder":
        torch.manual_seed(s.seed)
        kw = dict(s.face_args)
        if s.face_encoder.startswith(("facenet", "timm")) and pretrained:
            kw.setdefault("weights_option", face_weights_option)
        enc = create_encoder(s.face_encoder, pretrained=pretrained, weights=None if s.random_weights else s.face_weights,
                             offline=offline, **kw)
        if hasattr(enc, "no_face"):  # face detectors only; plain image encoders have no policy
            enc.no_face = s.no_face
        return enc

    def voice() -> "Encoder":
        torch.manual_seed(s.seed + 1)
        kw = dict(s.voice_args)
        if s.voice_encoder.startswith("ecapa") and pretrained:
            kw.setdefault("weights_option", voice_weights_option)
        return create_encoder(s.voice_encoder, pretrained=pretrained,
                              weights=None if s.random_weights else s.voice_weights, offline=offline, **kw)

    face_enc, voice_enc = build_all([face, voice], note="nothing was written")
    if face_enc.contract.input_kind != "image":
        raise UserError(f"face encoder {s.face_encoder!r} is not an image encoder")
    if voice_enc.contract.input_kind != "audio":
        raise UserError(f"voice encoder {s.voice_encoder!r} is not an audio encoder")
    return face_enc, voice_enc
