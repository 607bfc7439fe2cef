"""The FAME challenge / MAV-Celeb layout: versions, languages, identity counts, feature widths,
and every folder and file name, with the reader and writer of ``feature_info.json``.

Layout under ``feats_root`` (as users download it, and as ``prepare_features`` writes it)::

    feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv           (last column = identity)
    feats/<ver>/feature_info.json                                       (prepare_features only)
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<HeardLang>/<TestLang>_{faces,voices}_test.csv
        (or <TestLang>_{faces,voices}_unheard_test.csv for the unheard language)
    preExtracted_vggFace_utteranceLevel_Features/<ver>/feature_info.json (prepare_features only)
    face_voice_association_splits/<ver>/<TestLang>_test.txt             (key voice_path face_path)
    ground_truth/<ver>/<TestLang>_test.txt                              (key label; optional)

Test CSV row ``i`` is the face (or voice) of pair-list line ``i``. The unheard language's
test features sit in the folder of the model's training language (``HeardLang``).
This module imports no torch: the challenge tools use it too.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modalink.errors import FileFormatError, InputError, UnknownNameError, UserError

__all__ = [
    "FACE_DIM", "VOICE_DIM", "FAME_VERSIONS", "FAME_IDENTITY_COUNTS", "DEFAULT_CACHE_SUBDIR", "TRAIN_DIR",
    "TEST_DIR", "SPLITS_DIR", "GROUND_TRUTH_DIR", "LIST_SUFFIX", "FEATURE_INFO", "SCORING_FILE", "FeatureFileError",
    "FeatureInfoError", "fame_languages", "normalize_language", "other_language", "list_file_name", "FameLayout",
    "FameLayoutError", "check_fame_layout", "find_feature_info", "read_feature_info", "load_feature_info",
    "write_feature_info", "feature_dims",
]

FACE_DIM = 4096   # VGGFace fc7, post-ReLU
VOICE_DIM = 512   # utterance-level Thin-ResNet34 + GhostVLAD
#: Language pair of each MAV-Celeb version (first = the one listed first by the organisers).
FAME_VERSIONS: dict[str, tuple[str, str]] = {
    "v1": ("English", "Urdu"),
    "v2": ("English", "Hindi"),
    "v3": ("English", "German"),
}
#: (all identities, training identities, test identities) per version.
FAME_IDENTITY_COUNTS: dict[str, tuple[int, int, int]] = {
    "v1": (70, 64, 6), "v2": (84, 78, 6), "v3": (58, 50, 8),
}
DEFAULT_CACHE_SUBDIR = ".modalink_cache"
TRAIN_DIR = "feats"
TEST_DIR = "preExtracted_vggFace_utteranceLevel_Features"
SPLITS_DIR = "face_voice_association_splits"
GROUND_TRUTH_DIR = "ground_truth"
#: the end of every pair-list and ground-truth file name, ``<Lang>_test.txt``
LIST_SUFFIX = "_test.txt"
#: what prepare_features writes next to its CSVs: widths, encoders, label map, pairing rule
FEATURE_INFO = "feature_info.json"
#: per training language, the scoring embeddings and scores of a run (modalink.face_voice.scoring)
SCORING_FILE = "scoring.npz"
_MODALITY_FILE = {"face": "faces", "faces": "faces", "voice": "voices", "voices": "voices"}


class FeatureFileError(FileFormatError):
    """A FAME file is malformed; ``path`` / ``line`` / ``column`` say where (1-based)."""


class FeatureInfoError(FeatureFileError):
    """A ``feature_info.json`` that cannot be read or lacks its integer feature widths."""


def fame_languages(ver: str) -> tuple[str, str]:
    """The two languages of version ``ver`` (``'v1'``, ``'v2'``, ``'v3'``)."""
    try:
        return FAME_VERSIONS[ver]
    except KeyError:
        raise UnknownNameError(f"unknown FAME version {ver!r}; known: {sorted(FAME_VERSIONS)}") from None


def normalize_language(ver: str, lang: str) -> str:
    """Canonical spelling of ``lang`` in version ``ver`` (case-insensitive), else :class:`InputError`."""
    for known in fame_languages(ver):
        if known.lower() == str(lang).lower():
            return known
    raise InputError(f"language {lang!r} is not part of {ver}; {ver} has {fame_languages(ver)}")


def other_language(ver: str, lang: str) -> str:
    """The language of ``ver`` that is not ``lang`` (the unheard one for a model trained on it)."""
    lang = normalize_language(ver, lang)
    a, b = fame_languages(ver)
    return b if lang == a else a


def list_file_name(lang: str) -> str:
    """File name of a language's pair list / ground truth: ``<Lang>_test.txt``."""
    return f"{lang}{LIST_SUFFIX}"


def _modality_file(modality: str) -> str:
    try:
        return _MODALITY_FILE[modality]
    except KeyError:
        raise InputError(f"modality must be 'face' or 'voice', got {modality!r}") from None


@dataclass(frozen=True)
class FameLayout:
    """Paths of one version's files under ``root`` (the official download layout)."""

    root: Path
    ver: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        fame_languages(self.ver)

    @property
    def train_root(self) -> Path:
        """``feats/<ver>``: the training CSVs and the training side's ``feature_info.json``."""
        return self.root / TRAIN_DIR / self.ver

    @property
    def test_root(self) -> Path:
        """``preExtracted_vggFace_utteranceLevel_Features/<ver>``: one folder per heard language."""
        return self.root / TEST_DIR / self.ver

    @property
    def splits_dir(self) -> Path:
        """``face_voice_association_splits/<ver>``: the pair lists."""
        return self.root / SPLITS_DIR / self.ver

    @property
    def ground_truth_dir(self) -> Path:
        """``ground_truth/<ver>``: the labels of the pair lists, when they are given."""
        return self.root / GROUND_TRUTH_DIR / self.ver

    @property
    def feature_info_files(self) -> tuple[Path, Path]:
        """The training side's and the test side's ``feature_info.json``, in the order they are read."""
        return self.train_root / FEATURE_INFO, self.test_root / FEATURE_INFO

    def train_csv(self, lang: str, modality: str) -> Path:
        lang = normalize_language(self.ver, lang)
        return self.train_root / f"{lang}_feats" / f"{lang}_{_modality_file(modality)}_train.csv"

    def test_csv_dir(self, heard_lang: str) -> Path:
        """The folder of the test CSVs a model trained on ``heard_lang`` reads."""
        return self.test_root / normalize_language(self.ver, heard_lang)

    def test_csv_name(self, test_lang: str, modality: str) -> str:
        """The preferred test CSV name, ``<TestLang>_{faces,voices}_test.csv``."""
        return f"{normalize_language(self.ver, test_lang)}_{_modality_file(modality)}_test.csv"

    def test_csv_candidates(self, heard_lang: str, test_lang: str, modality: str) -> list[Path]:
        """Accepted names, in order of preference: ``<T>_<m>_test.csv``, ``<T>_<m>_unheard_test.csv``
        (the latter only for the unheard language)."""
        heard = normalize_language(self.ver, heard_lang)
        test = normalize_language(self.ver, test_lang)
        folder = self.test_csv_dir(heard)
        m = _modality_file(modality)
        names = [self.test_csv_name(test, modality)]
        if test != heard:
            names.append(f"{test}_{m}_unheard_test.csv")
        return [folder / n for n in names]

    def test_csv(self, heard_lang: str, test_lang: str, modality: str) -> Path:
        """The existing test CSV (first accepted name found); ``FileNotFoundError`` lists all tried."""
        candidates = self.test_csv_candidates(heard_lang, test_lang, modality)
        for path in candidates:
            if path.is_file():
                return path
        tried = "\n  ".join(str(p) for p in candidates)
        raise FileNotFoundError(f"no {test_lang} {modality} test features for a model trained on "
                                f"{heard_lang}; looked for:\n  {tried}")

    def pair_list(self, test_lang: str) -> Path:
        return self.splits_dir / list_file_name(normalize_language(self.ver, test_lang))


class FameLayoutError(UserError, FileNotFoundError):
    """The FAME layout is not under the given feature root (one line: expected path, what was found)."""


def _versions_in(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.name in FAME_VERSIONS and d.is_dir()) \
        if folder.is_dir() else []


def check_fame_layout(feats_root: str | os.PathLike, ver: str, flag: str = "--feats-root") -> None:
    """Raise :class:`FameLayoutError` when ``feats_root`` does not hold ``ver``'s training features,
    naming the expected file, what the folder looks like instead and the value to use."""
    root = Path(feats_root)
    expected = FameLayout(root, ver).train_csv(fame_languages(ver)[0], "face")
    if expected.is_file():
        return
    what = f"no FAME {ver} training features at {expected}"
    if not root.is_dir():
        raise FameLayoutError(f"{what}: {flag} {root} does not exist; give the folder that holds "
                              f"{TRAIN_DIR}/, {TEST_DIR}/ and {SPLITS_DIR}/")
    here = _versions_in(root / TRAIN_DIR)
    if here and ver not in here:
        raise FameLayoutError(f"{what}: this folder has versions {', '.join(here)} only; use --ver {here[-1]} "
                              f"(or the folder that holds {ver})")
    if root.name in (TRAIN_DIR, TEST_DIR, SPLITS_DIR) or _versions_in(root):
        up = root.parent
        raise FameLayoutError(f"{what}: {root} looks like the {root.name}/ folder one level down; use "
                              f"{flag} {up}")
    below = [d for d in sorted(root.iterdir()) if d.is_dir() and (d / TRAIN_DIR).is_dir()]
    if below:
        raise FameLayoutError(f"{what}: the layout is one level further down, in {below[0]}; use "
                              f"{flag} {below[0]}")
    if here:
        raise FameLayoutError(f"{what}: {root / TRAIN_DIR / ver} has no "
                              f"{expected.relative_to(root / TRAIN_DIR / ver)}; check the download is complete")
    raise FameLayoutError(f"{what}: {root} has no {TRAIN_DIR}/ folder; give the folder that holds "
                          f"{TRAIN_DIR}/, {TEST_DIR}/ and {SPLITS_DIR}/ (or leave {flag} out for the "
                          f"synthetic set)")




def find_feature_info(feats_root: str | os.PathLike, ver: str) -> Path | None:
    """``feats/<ver>/feature_info.json`` (or the test-side copy) under ``feats_root``, else ``None``."""
    for path in FameLayout(Path(feats_root), ver).feature_info_files:
        if path.is_file():
            return path
    return None


def load_feature_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``feature_info.json`` at ``path``: a JSON object with integer ``face_dim`` and
    ``voice_dim``; anything else (unreadable, not JSON, no widths) is a :class:`FeatureInfoError`."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise TypeError(f"a JSON {type(info).__name__}, not an object")
        int(info["face_dim"]), int(info["voice_dim"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FeatureInfoError(path, f"is not a valid {FEATURE_INFO} ({type(exc).__name__}: {exc}); it needs "
                               f"integer 'face_dim' and 'voice_dim': rerun prepare.py, or remove it and set "
                               f"data.face_dim= and data.voice_dim=") from None
    return info


def read_feature_info(feats_root: str | os.PathLike, ver: str) -> tuple[dict[str, Any], Path] | None:
    """The ``feature_info.json`` prepare.py wrote for ``ver`` under ``feats_root`` and its path
    (the training side's, else the test side's), or ``None`` when there is none."""
    path = find_feature_info(feats_root, ver)
    return None if path is None else (load_feature_info(path), path)


def write_feature_info(path: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write ``info`` as ``feature_info.json`` at ``path`` (atomically)."""
    from modalink.io import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(info, indent=2) + "\n")


def feature_dims(feats_root: str | os.PathLike, ver: str, face_dim: int | None = None,
                 voice_dim: int | None = None) -> tuple[int, int]:
    """Face/voice widths: the given ones → ``feats/<ver>/feature_info.json`` → the official 4096 / 512."""
    path = FameLayout(Path(feats_root), ver).feature_info_files[0]
    if (face_dim is None or voice_dim is None) and path.is_file():
        info = load_feature_info(path)
        face_dim = int(info["face_dim"]) if face_dim is None else face_dim
        voice_dim = int(info["voice_dim"]) if voice_dim is None else voice_dim
    return FACE_DIM if face_dim is None else face_dim, VOICE_DIM if voice_dim is None else voice_dim
