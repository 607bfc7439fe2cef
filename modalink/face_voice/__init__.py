"""Face–voice verification (the FAME challenge on MAV-Celeb): the layout of its files, feature and
pair-list readers with their cache, raw-media extraction, the training config and objective,
scoring, results, run folders, raw-media verification and a synthetic data set.

Modules (each importable on its own; this package imports them on first use, so the torch-free
parts — layout, readers, cache, splits, synthetic data — load without torch):

- :mod:`~modalink.face_voice.layout` — versions, languages, every folder/file name, ``feature_info.json``
- :mod:`~modalink.face_voice.feature_csv`, :mod:`~modalink.face_voice.feature_arrow`,
  :mod:`~modalink.face_voice.lists`, :mod:`~modalink.face_voice.cache`,
  :mod:`~modalink.face_voice.features`, :mod:`~modalink.face_voice.splits` — reading the features
- :mod:`~modalink.face_voice.raw`, :mod:`~modalink.face_voice.extraction` — raw MAV-Celeb media → features
- :mod:`~modalink.face_voice.config`, :mod:`~modalink.face_voice.objective`,
  :mod:`~modalink.face_voice.training`, :mod:`~modalink.face_voice.scoring`, :mod:`~modalink.face_voice.results`,
  :mod:`~modalink.face_voice.runs`, :mod:`~modalink.face_voice.contract` — training, scoring, run folders
- :mod:`~modalink.face_voice.verify` — raw-media verification with a trained run
- :mod:`~modalink.face_voice.synthetic` — a deterministic MAV-Celeb-like feature set
"""
from __future__ import annotations

import importlib
from typing import Any

_MODULES: dict[str, tuple[str, ...]] = {
    "layout": ("FACE_DIM", "VOICE_DIM", "FAME_VERSIONS", "FAME_IDENTITY_COUNTS", "FEATURE_INFO", "FeatureFileError",
               "FeatureInfoError", "FameLayout", "FameLayoutError", "check_fame_layout", "fame_languages",
               "normalize_language", "other_language", "read_feature_info", "write_feature_info", "feature_dims"),
    "feature_csv": ("read_feature_csv",),
    "lists": ("PairEntry", "read_pairs", "read_ground_truth"),
    "cache": ("FeatureCache",),
    "features": ("FameFeatures", "FameTrainSet", "FameTestSet", "load_fame_train", "load_fame_test", "remap_labels"),
    "splits": ("split_train_val", "make_verification_trials"),
    "synthetic": ("SyntheticFame", "SyntheticFameSpec", "generate_synthetic_fame"),
    "extraction": ("PrepareConfig", "prepare_features"),
    "config": ("FameConfig",),
    "objective": ("FaceVoiceModelConfig", "FaceVoiceLossConfig", "FaceVoiceObjective", "PairDataset",
                  "build_face_voice_model", "collate_pairs", "embed_rows", "embed_pairs", "pair_distances",
                  "trial_distances"),
    "training": ("LanguageResult", "TrainedLanguages", "train_language", "train_languages"),
    "scoring": ("score_language", "score_test_sets"),
    "results": ("write_fame_results", "format_results", "eer_rows", "fuse_members"),
    "runs": ("FameRun", "load_run", "export_models", "load_model_from_run", "open_ensemble_folder"),
    "contract": ("ModelMismatchError", "trained_for", "check_trained_for"),
    "verify": ("FaceVoiceVerifier", "RawMediaEmbedder", "FeatureMismatchError", "score_raw_pairs",
               "score_pair_lists"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'modalink.face_voice' has no attribute {name!r}")
    return getattr(importlib.import_module(f"modalink.face_voice.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
