"""FAME scoring of one training language: raw and normalised distances, the
normalisation chosen on the VALIDATION trials, and ``<ver>_<Lang>/scoring.npz`` — what
``python -m challenge norm`` / ``fuse`` and the seed ensemble read back.

``scoring.npz`` (arrays, no pickled objects): ``cohort_face``/``cohort_voice``/``cohort_label``
(scoring embeddings of the training rows of the training identities), ``val_face``/``val_voice``
(validation rows), ``val_trial_face``/``val_trial_voice``/``val_label`` (the validation trials,
1 = same person), ``val_raw`` and ``val_score`` (validation distances before normalisation and
as submitted), and per test language ``L``: ``test_L_keys``, ``test_L_face``, ``test_L_voice``,
``test_L_raw``, ``test_L_score``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from modalink.face_voice.layout import SCORING_FILE
from modalink.face_voice.objective import embed_pairs, embed_rows
from modalink.io import atomic_write_bytes
from modalink.metrics import fast_eer
from modalink.score_norm import NormConfig, NormSpec, choose_on_validation, normalise_trials

__all__ = ["score_language", "write_scoring", "score_test_sets", "score_models", "ScoreNorm", "pair_scores"]


def score_language(model: nn.Module, faces: np.ndarray, voices: np.ndarray, labels: np.ndarray,
                   tr_idx: np.ndarray, va_idx: np.ndarray, trials: tuple[np.ndarray, np.ndarray, np.ndarray],
                   test_sets: list[Any], train_lang: str, norm: NormConfig, lang_dir: Path
                   ) -> tuple[dict, dict, dict[str, Any]]:
    """Score one training language's test sets with the normalisation chosen on validation.

    Returns ``(scores, raw_scores, record)``: ``{(train, test): (keys, distances)}`` as submitted
    and before normalisation, and the choice (every candidate's validation EER). Writes
    ``lang_dir/scoring.npz``."""
    fi, vi, same = trials
    emb = {"cohort_face": embed_rows(model, faces, "face", rows=tr_idx),
           "cohort_voice": embed_rows(model, voices, "voice", rows=tr_idx),
           "val_face": embed_rows(model, faces, "face", rows=va_idx),
           "val_voice": embed_rows(model, voices, "voice", rows=va_idx)}
    emb = {k: v.cpu().numpy().astype(np.float32) for k, v in emb.items()}
    cohort = (emb["cohort_face"], emb["cohort_voice"], np.asarray(labels)[tr_idx])
    val_raw = torch.linalg.norm(torch.from_numpy(emb["val_face"][fi] - emb["val_voice"][vi]), dim=1).double().numpy()
    spec, rows = choose_on_validation(norm.candidates(), same, val_raw, emb["val_face"], emb["val_voice"],
                                      *cohort, face_idx=fi, voice_idx=vi)
    val_score = normalise_trials(spec, val_raw, emb["val_face"], emb["val_voice"], *cohort, fi, vi)
    arrays: dict[str, np.ndarray] = {**emb, "cohort_label": np.asarray(cohort[2]), "val_trial_face": fi,
                                     "val_trial_voice": vi, "val_label": np.asarray(same, dtype=np.int8),
                                     "val_raw": val_raw, "val_score": val_score}
    scores, raw, norm = {}, {}, ScoreNorm(spec, *cohort)
    for t in test_sets:
        ef, ev, d, s = pair_scores(model, t.faces, t.voices, norm)
        key = (train_lang, t.test_language)
        raw[key], scores[key] = (t.keys, d), (t.keys, s)
        p = f"test_{t.test_language}_"
        arrays.update({p + "keys": np.asarray(t.keys, dtype=str), p + "face": ef, p + "voice": ev,
                       p + "raw": d, p + "score": s})
    write_scoring(lang_dir / SCORING_FILE, arrays)
    record = {"chosen": spec.to_dict() | {"name": spec.name}, "val_eer_raw": float(fast_eer(same, val_raw)),
              "val_eer": float(fast_eer(same, val_score)), "candidates": rows}
    return scores, raw, record


@dataclass(frozen=True)
class ScoreNorm:
    """A trained language's score normalisation: the setting chosen on validation and its cohort
    (the training rows' scoring embeddings and identities, as ``scoring.npz`` keeps them)."""

    spec: NormSpec
    cohort_face: np.ndarray
    cohort_voice: np.ndarray
    cohort_label: np.ndarray


def pair_scores(model: nn.Module, faces: Any, voices: Any, norm: ScoreNorm | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scoring embeddings of face and voice rows paired line by line and their L2 distances
    (:func:`~modalink.face_voice.objective.embed_pairs`), and the scores as a run submits them:
    normalised when ``norm`` says so, else the distances."""
    ef_t, ev_t, d = embed_pairs(model, faces, voices)
    ef, ev = ef_t.cpu().numpy().astype(np.float32), ev_t.cpu().numpy().astype(np.float32)
    if norm is None or norm.spec.method == "none":
        return ef, ev, d, d
    return ef, ev, d, normalise_trials(norm.spec, d, ef, ev, norm.cohort_face, norm.cohort_voice, norm.cohort_label)


def write_scoring(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def score_test_sets(model: nn.Module, test_sets: list[Any], train_lang: str, norm: ScoreNorm | None = None
                    ) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """Scores (lower = same) for each test set, keyed by (train_lang, test_lang): distances,
    normalised when ``norm`` is given (as :func:`score_language` scores them in training)."""
    return {(train_lang, t.test_language): (t.keys, pair_scores(model, t.faces, t.voices, norm)[3]) for t in test_sets}


def score_models(root: Path, ver: str, langs: list[str], model_of: Callable[[str], nn.Module], *,
                 cache_dir: str | None, face_dim: int, voice_dim: int,
                 norm_of: Callable[[str], ScoreNorm | None] | None = None
                 ) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """Scores of each training language's model (``model_of(lang)``) on its heard and unheard test
    sets under ``root`` (:func:`score_test_sets`, normalised as ``norm_of(lang)`` says), keyed by
    (train_lang, test_lang)."""
    from modalink.face_voice.features import FameFeatures

    scores = {}
    for lang in langs:
        data = FameFeatures.load(root, ver, lang, cache_dir=cache_dir, load_train=False, face_dim=face_dim,
                                 voice_dim=voice_dim, mmap=True)
        norm = norm_of(lang) if norm_of is not None else None
        scores.update(score_test_sets(model_of(lang), [data.heard, data.unheard], lang, norm))
    return scores
