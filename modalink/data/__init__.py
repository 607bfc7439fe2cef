"""Datasets, feature readers and caches, splits and synthetic data."""
from modalink.data.fame_csv import FeatureFileError, read_feature_csv
from modalink.data.fame_lists import PairEntry, read_ground_truth, read_pairs
from modalink.data.fame_cache import FeatureCache, file_digest
from modalink.data.fame import (FACE_DIM, FAME_IDENTITY_COUNTS, FAME_VERSIONS, VOICE_DIM, FameFeatures,
                                FameLayout, FameLayoutError, FameTestSet, FameTrainSet, check_fame_layout,
                                fame_languages, load_fame_test,
                                load_fame_train, normalize_language, other_language, remap_labels)
from modalink.data.fame_splits import make_verification_trials, split_train_val

__all__ = [
    "FeatureFileError", "PairEntry", "read_feature_csv", "read_ground_truth", "read_pairs",
    "FeatureCache", "file_digest",
    "FACE_DIM", "VOICE_DIM", "FAME_VERSIONS", "FAME_IDENTITY_COUNTS", "FameFeatures", "FameLayout",
    "FameLayoutError", "check_fame_layout",
    "FameTestSet", "FameTrainSet", "fame_languages", "load_fame_test", "load_fame_train",
    "normalize_language", "other_language", "remap_labels",
    "make_verification_trials", "split_train_val",
    "SyntheticFame", "SyntheticFameSpec", "generate_synthetic_fame",
]

# Modules that double as CLIs (``python -m modalink.data.<module>``) are imported lazily, so
# running them does not import them twice (runpy's "found in sys.modules" warning).
_LAZY = {
    "SyntheticFame": "modalink.data.synthetic_fame",
    "SyntheticFameSpec": "modalink.data.synthetic_fame",
    "generate_synthetic_fame": "modalink.data.synthetic_fame",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modalink.data' has no attribute {name!r}")
