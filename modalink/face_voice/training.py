"""Training one FAME language: validation identities held out of its training set, the model and
objective of the config trained by the modalink engine (the epoch of lowest validation EER kept;
with ``model.members`` > 1, that many models of different seeds, joined into one
:class:`~modalink.models.EmbeddingEnsemble`), then its test sets scored with the normalisation
chosen on validation (:func:`~modalink.face_voice.scoring.score_language`)."""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

if TYPE_CHECKING:
    from modalink.face_voice.config import FameConfig
    from modalink.face_voice.features import FameFeatures

__all__ = ["LanguageResult", "TrainedLanguages", "train_language", "train_languages", "MEMBER_SEED_STEP"]

#: member k of a seed ensemble (``model.members``) trains with ``engine.seed + MEMBER_SEED_STEP * k``
MEMBER_SEED_STEP = 10


@dataclass
class LanguageResult:
    """One training language's outcome. ``model`` and the scores are filled on the main process only:
    ``scores``/``raw_scores`` map ``(train, test)`` to ``(keys, distances)`` as submitted and before
    normalisation, ``norm`` records the normalisation choice."""

    selection: dict[str, Any]
    seconds: float
    model: nn.Module | None = None
    scores: dict = field(default_factory=dict)
    raw_scores: dict = field(default_factory=dict)
    norm: dict[str, Any] | None = None


def train_language(cfg: FameConfig, data: FameFeatures, lang: str, lang_dir: Path, face_dim: int, voice_dim: int,
                   logger: logging.Logger, *, is_main: bool, tracker_config: dict[str, Any]) -> LanguageResult:
    """Train ``lang``'s model on ``data`` (checkpoints and log in ``lang_dir``), then, on the main
    process, score its heard and unheard test sets and write ``lang_dir/scoring.npz``."""
    from modalink.engine import Trainer
    from modalink.engine.session import exported_network
    from modalink.data.processes import Processes
    from modalink.face_voice.objective import (FaceVoiceObjective, PairDataset, build_face_voice_model, collate_pairs,
                                               model_summary, trial_distances)
    from modalink.face_voice.scoring import score_language
    from modalink.face_voice.splits import make_verification_trials, split_train_val
    from modalink.metrics import fast_eer
    from modalink.models import ensemble_of

    t0 = time.time()
    train = data.train
    tr_idx, va_idx = split_train_val(train.labels, val_fraction=cfg.data.val_fraction,
                                     n_val_ids=cfg.data.val_ids, seed=cfg.data.split_seed)
    # identities of the training part, remapped to 0..C-1 for the classifier
    _, y_train = np.unique(train.labels[tr_idx], return_inverse=True)
    n_classes = int(y_train.max()) + 1
    faces, voices = train.faces, train.voices
    train_ds = PairDataset(faces, voices, y_train, index=tr_idx)
    vf, vv, vl = faces[va_idx], voices[va_idx], train.labels[va_idx]
    fi, vi, same = make_verification_trials(vl, cfg.data.val_trials, seed=cfg.data.split_seed)
    logger.info("%s: %d training rows (%d identities), %d validation rows (%d identities, %d trials); "
                "features %d-D face / %d-D voice", lang, len(tr_idx), n_classes, len(va_idx),
                len(set(vl.tolist())), len(same), face_dim, voice_dim)

    procs = Processes.current()  # each process embeds its block of the validation rows

    def val_eer(model: nn.Module) -> float:
        return fast_eer(same, trial_distances(model, vf, vv, fi, vi, processes=procs))

    def evaluate(trainer: Trainer) -> dict[str, float]:
        return {"eer": val_eer(exported_network(trainer.model))}

    networks, members = [], []
    for k in range(cfg.model.members):
        # member k: its own seed and run folder (member 0 is the single-model run itself)
        engine = dataclasses.replace(cfg.engine, seed=cfg.engine.seed + MEMBER_SEED_STEP * k)
        member_dir = lang_dir if k == 0 else lang_dir / f"member_{k}"
        torch.manual_seed(engine.seed)
        model = build_face_voice_model(cfg.model, face_dim, voice_dim, n_classes)
        objective = FaceVoiceObjective(model, cfg.loss, n_classes)
        if k == 0:
            logger.info("model %s: %s", cfg.model.name, model_summary(model))
        trainer = Trainer(objective, train_ds, engine, member_dir, evaluate_fn=evaluate, collate_fn=collate_pairs,
                          tracker_config={**tracker_config, **({"member": k} if cfg.model.members > 1 else {})})
        result = trainer.fit()
        what = lang if cfg.model.members == 1 else f"{lang} member {k} (seed {engine.seed})"
        logger.info("%s: best validation EER %.2f %% at epoch %s", what, result.best_metric or float("nan"),
                    result.best_epoch)
        networks.append(exported_network(trainer.model).eval())
        members.append({"seed": engine.seed, "best_val_eer": result.best_metric, "best_epoch": result.best_epoch})
    selection: dict[str, Any] = {"best_val_eer": members[0]["best_val_eer"], "best_epoch": members[0]["best_epoch"]}
    model = networks[0]
    if len(networks) > 1:
        model = ensemble_of(networks).eval()
        selection = {"best_val_eer": val_eer(model), "best_epoch": None, "members": members}
        logger.info("%s: ensemble of %d members, validation EER %.2f %%", lang, len(networks),
                    selection["best_val_eer"])
    out = LanguageResult(selection=selection, seconds=0.0)
    if is_main:
        out.model = model
        out.scores, out.raw_scores, out.norm = score_language(
            out.model, faces, voices, train.labels, tr_idx, va_idx, (fi, vi, same), [data.heard, data.unheard],
            lang, cfg.norm, lang_dir)
    out.seconds = round(time.time() - t0, 2)
    return out


@dataclass
class TrainedLanguages:
    """Every training language's outcome, gathered for the run's results (scores and models: main
    process only)."""

    scores: dict = field(default_factory=dict)
    raw_scores: dict = field(default_factory=dict)
    norm: dict[str, Any] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    selection: dict[str, dict[str, Any]] = field(default_factory=dict)


def train_languages(cfg: FameConfig, feats: dict[str, FameFeatures], out: Path, ver: str, face_dim: int,
                    voice_dim: int, logger: logging.Logger, state: Any, config_path: str) -> TrainedLanguages:
    """:func:`train_language` for each language of ``feats`` in turn (``<out>/<ver>_<Lang>``); each
    language's arrays (memory maps of the feature cache) are released when it is done. ``state``:
    the engine's process state (the processes wait for each other after each language)."""
    done = TrainedLanguages()
    for lang in list(feats):
        res = train_language(cfg, feats.pop(lang), lang, out / f"{ver}_{lang}", face_dim, voice_dim, logger,
                             is_main=state.is_main_process, tracker_config={"lang": lang, "config": config_path})
        if res.model is not None:
            done.scores.update(res.scores)
            done.raw_scores.update(res.raw_scores)
            done.norm[lang] = res.norm
            done.models[lang] = res.model
        done.timings[lang] = {"seconds": res.seconds}
        done.selection[lang] = res.selection
        del res
        state.wait_for_everyone()
    return done
