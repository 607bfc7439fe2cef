"""FAME challenge / MAV-Celeb pre-extracted features: layout, versions and loaders.

Layout under ``feats_root`` (as users download it)::

    feats/<ver>/<Lang>_feats/<Lang>_{faces,voices}_train.csv           (last column = identity)
    preExtracted_vggFace_utteranceLevel_Features/<ver>/<HeardLang>/<TestLang>_{faces,voices}_test.csv
        (or <TestLang>_{faces,voices}_unheard_test.csv for the unheard language)
    face_voice_association_splits/<ver>/<TestLang>_test.txt             (key voice_path face_path)

Test CSV row ``i`` is the face (or voice) of pair-list line ``i``. The unheard language's
test features sit in the folder of the model's training language (``HeardLang``).

Typical use::

    data = FameFeatures.load("/data/mavceleb", "v3", "English")
    train_idx, val_idx = split_train_val(data.train.labels, val_fraction=0.1, seed=0)
    data.heard.faces, data.heard.voices, data.heard.keys      # English test pairs
    data.unheard.faces, data.unheard.voices, data.unheard.keys  # German test pairs
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modalink.data.fame_cache import FeatureCache, cache_name_for, file_digest
from modalink.data.fame_csv import FeatureFileError, read_feature_csv
from modalink.data.fame_lists import PairEntry, read_pairs
from modalink.errors import InputError, UnknownNameError, UserError

__all__ = [
    "FACE_DIM", "VOICE_DIM", "FAME_VERSIONS", "FAME_IDENTITY_COUNTS", "DEFAULT_CACHE_SUBDIR",
    "fame_languages", "normalize_language", "other_language", "remap_labels", "FameLayout",
    "FameLayoutError", "check_fame_layout", "FameTrainSet", "FameTestSet", "FameFeatures", "load_fame_train", "load_fame_test",
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
_MODALITY_FILE = {"face": "faces", "faces": "faces", "voice": "voices", "voices": "voices"}


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


def remap_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary identity labels to ``0..C-1``: returns ``(codes int64, classes)`` with
    ``classes[codes] == labels`` and ``classes`` sorted."""
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64).reshape(-1), classes


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

    def train_csv(self, lang: str, modality: str) -> Path:
        lang = normalize_language(self.ver, lang)
        return (self.root / TRAIN_DIR / self.ver / f"{lang}_feats"
                / f"{lang}_{_modality_file(modality)}_train.csv")

    def test_csv_candidates(self, heard_lang: str, test_lang: str, modality: str) -> list[Path]:
        """Accepted names, in order of preference: ``<T>_<m>_test.csv``, ``<T>_<m>_unheard_test.csv``
        (the latter only for the unheard language)."""
        heard = normalize_language(self.ver, heard_lang)
        test = normalize_language(self.ver, test_lang)
        folder = self.root / TEST_DIR / self.ver / heard
        m = _modality_file(modality)
        names = [f"{test}_{m}_test.csv"]
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
        lang = normalize_language(self.ver, test_lang)
        return self.root / SPLITS_DIR / self.ver / f"{lang}_test.txt"


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


@dataclass
class FameTrainSet:
    """Training rows of one language: row ``i`` is a (face, voice) pair of identity ``labels[i]``.

    ``labels`` are remapped to ``0..C-1``; ``classes[labels]`` gives the original identity.
    """

    language: str
    faces: np.ndarray
    voices: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    face_file: Path | None = None
    voice_file: Path | None = None

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))

    def __len__(self) -> int:
        return int(len(self.labels))


@dataclass
class FameTestSet:
    """Test pairs of ``test_language`` for a model trained on ``heard_language``: row ``i`` of
    ``faces`` / ``voices`` belongs to ``pairs[i]``."""

    heard_language: str
    test_language: str
    faces: np.ndarray
    voices: np.ndarray
    pairs: list[PairEntry]
    face_file: Path | None = None
    voice_file: Path | None = None
    pair_file: Path | None = None

    @property
    def heard(self) -> bool:
        return self.heard_language == self.test_language

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)


def _reader(feats_root: Path, cache_dir: str | os.PathLike | None, use_cache: bool, mmap: bool,
            progress: bool | None, digests: dict[str, str] | None = None):
    cache = FeatureCache(Path(cache_dir) if cache_dir else feats_root / DEFAULT_CACHE_SUBDIR) \
        if use_cache else None

    def read(path: Path, dim: int, has_label: bool | None):
        show = progress if progress is not None else path.stat().st_size > (64 << 20)
        if cache is None:
            out = read_feature_csv(path, dim, has_label, progress=show)
            if digests is not None:
                digests[_rel(path, feats_root)] = file_digest(path)
            return out
        out = cache.load(path, dim, has_label, name=cache_name_for(path, feats_root), mmap=mmap,
                         progress=show)
        if digests is not None:
            digests[_rel(path, feats_root)] = cache.digests[str(path.resolve())]
        return out
    return read


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def load_fame_train(feats_root: str | os.PathLike, ver: str, lang: str, *,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                    face_dim: int = FACE_DIM, voice_dim: int = VOICE_DIM, mmap: bool = False,
                    progress: bool | None = None, digests: dict[str, str] | None = None) -> FameTrainSet:
    """Load ``<lang>_{faces,voices}_train.csv`` of ``ver`` (cached as ``.npy`` by default).

    The two files must have the same number of rows and the same label on every row.
    """
    layout = FameLayout(Path(feats_root), ver)
    lang = normalize_language(ver, lang)
    read = _reader(layout.root, cache_dir, use_cache, mmap, progress, digests)
    face_file, voice_file = layout.train_csv(lang, "face"), layout.train_csv(lang, "voice")
    faces, face_labels = read(face_file, face_dim, True)
    voices, voice_labels = read(voice_file, voice_dim, True)
    if len(faces) != len(voices):
        raise FeatureFileError(face_file, f"has {len(faces)} rows but {voice_file} has "
                               f"{len(voices)}; face and voice rows must pair up one to one")
    if face_labels.dtype.kind != voice_labels.dtype.kind or not np.array_equal(face_labels, voice_labels):
        diff = np.flatnonzero(np.asarray(face_labels).astype(str) != np.asarray(voice_labels).astype(str))
        row = int(diff[0]) if diff.size else 0
        raise FeatureFileError(face_file, f"identity label {face_labels[row]!r} differs from "
                               f"{voice_labels[row]!r} on the same line of {voice_file}", row + 1)
    codes, classes = remap_labels(face_labels)
    return FameTrainSet(lang, faces, voices, codes, classes, face_file, voice_file)


def load_fame_test(feats_root: str | os.PathLike, ver: str, heard_lang: str, test_lang: str, *,
                   cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                   face_dim: int = FACE_DIM, voice_dim: int = VOICE_DIM, mmap: bool = False,
                   progress: bool | None = None, digests: dict[str, str] | None = None) -> FameTestSet:
    """Load the ``test_lang`` test pairs for a model trained on ``heard_lang``.

    Test CSVs may have ``dim`` or ``dim + 1`` columns (an extra label column is ignored); each
    must have exactly one row per pair-list line.
    """
    layout = FameLayout(Path(feats_root), ver)
    heard_lang, test_lang = normalize_language(ver, heard_lang), normalize_language(ver, test_lang)
    read = _reader(layout.root, cache_dir, use_cache, mmap, progress, digests)
    pair_file = layout.pair_list(test_lang)
    pairs = read_pairs(pair_file)
    if digests is not None:
        digests[_rel(pair_file, layout.root)] = file_digest(pair_file)
    face_file = layout.test_csv(heard_lang, test_lang, "face")
    voice_file = layout.test_csv(heard_lang, test_lang, "voice")
    faces, _ = read(face_file, face_dim, None)
    voices, _ = read(voice_file, voice_dim, None)
    for path, arr in ((face_file, faces), (voice_file, voices)):
        if len(arr) != len(pairs):
            raise FeatureFileError(path, f"has {len(arr)} rows but the pair list {pair_file} has "
                                   f"{len(pairs)} lines; rows must align with pair-list lines")
    return FameTestSet(heard_lang, test_lang, faces, voices, pairs, face_file, voice_file, pair_file)


@dataclass
class FameFeatures:
    """Everything one FAME run needs: training rows of ``train_language`` and its heard
    (same language) and unheard (other language) test pairs."""

    ver: str
    train_language: str
    train: FameTrainSet | None
    heard: FameTestSet | None
    unheard: FameTestSet | None
    root: Path = field(default=Path("."))
    digests: dict[str, str] = field(default_factory=dict)  # file (relative to root) -> BLAKE2b

    @property
    def test_language_unheard(self) -> str:
        return other_language(self.ver, self.train_language)

    @classmethod
    def load(cls, feats_root: str | os.PathLike, ver: str, train_lang: str, *,
             cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
             load_train: bool = True, load_test: bool = True, face_dim: int = FACE_DIM,
             voice_dim: int = VOICE_DIM, mmap: bool = False, progress: bool | None = None
             ) -> "FameFeatures":
        """Load train and/or heard+unheard test features of ``ver`` for ``train_lang``.

        Cached as ``.npy`` under ``<feats_root>/.modalink_cache/`` (or ``cache_dir``) unless
        ``use_cache=False``. ``progress=None`` shows bars only for CSVs over 64 MiB.
        """
        root = Path(feats_root)
        check_fame_layout(root, ver)
        lang = normalize_language(ver, train_lang)
        digests: dict[str, str] = {}
        kw = dict(cache_dir=cache_dir, use_cache=use_cache, face_dim=face_dim, voice_dim=voice_dim,
                  mmap=mmap, progress=progress, digests=digests)
        train = load_fame_train(root, ver, lang, **kw) if load_train else None
        heard = unheard = None
        if load_test:
            heard = load_fame_test(root, ver, lang, lang, **kw)
            unheard = load_fame_test(root, ver, lang, other_language(ver, lang), **kw)
        return cls(ver, lang, train, heard, unheard, root, digests)
