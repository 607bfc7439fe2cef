"""Loaders of one version's pre-extracted FAME features: training rows and test pairs.

Test CSV row ``i`` is the face (or voice) of pair-list line ``i``; the unheard language's test
features sit in the folder of the model's training language. CSVs are cached as ``.npy``
(:mod:`modalink.face_voice.cache`).

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

from modalink.face_voice.cache import FeatureCache, cache_name_for, file_digest
from modalink.face_voice.feature_csv import read_feature_csv
from modalink.face_voice.layout import (DEFAULT_CACHE_SUBDIR, FACE_DIM, VOICE_DIM, FameLayout, FeatureFileError,
                                        check_fame_layout, normalize_language, other_language)
from modalink.face_voice.lists import PairEntry, read_pairs

__all__ = ["remap_labels", "FameTrainSet", "FameTestSet", "FameFeatures", "load_fame_train", "load_fame_test"]


def remap_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary identity labels to ``0..C-1``: returns ``(codes int64, classes)`` with
    ``classes[codes] == labels`` and ``classes`` sorted."""
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64).reshape(-1), classes


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
