"""The configuration of a FAME training run (``FameConfig``: model, loss, engine, data, score
normalisation and the run's own section) and its checks, run when it is loaded."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modalink.config import bounded, optional
from modalink.engine import EngineConfig
from modalink.face_voice.layout import fame_languages, normalize_language
from modalink.face_voice.objective import FaceVoiceLossConfig, FaceVoiceModelConfig
from modalink.score_norm import NormConfig

__all__ = ["MONITORS", "RUN_ENTRIES", "DataConfig", "RunConfig", "FameConfig", "resolve_languages"]

#: the validation metrics train.py computes (engine.monitor) and the direction that is better
MONITORS = {"eer": "min"}
#: what train.py writes besides the shared run files: one folder per (version, training language)
RUN_ENTRIES = tuple(f"{ver}_{lang}" for ver in ("v1", "v2", "v3") for lang in fame_languages(ver))


@dataclass
class DataConfig:
    """The ``data:`` section."""

    val_ids: int | None = optional(ge=1)  # identities held out for model selection (None: val_fraction)
    val_fraction: float = bounded(0.1, gt=0, lt=1)
    val_trials: int = bounded(4000, ge=2)  # balanced face-voice trials among the validation rows
    split_seed: int = 0
    face_dim: int | None = optional(ge=1)  # None: from feature_info.json next to the CSVs, else 4096
    voice_dim: int | None = optional(ge=1)  # None: from feature_info.json, else 512
    cache_dir: str | None = None  # binary feature cache (None: <feats-root>/.modalink_cache)


@dataclass
class RunConfig:
    """The ``run:`` section, filled from the command line and saved with the run."""

    feats_root: str | None = None  # None until the run resolves it (--feats-root, or the synthetic set's folder)
    ver: Literal["v1", "v2", "v3"] = "v3"
    train_langs: list[str] = field(default_factory=list)
    output_dir: str = "runs/fame"
    ground_truth: str | None = None  # the ground-truth folder used; None: none (no EERs)
    edition: str = "2026"
    synthetic: bool = False


@dataclass
class FameConfig:
    """Everything a FAME run is defined by."""

    model: FaceVoiceModelConfig = field(default_factory=FaceVoiceModelConfig)
    loss: FaceVoiceLossConfig = field(default_factory=FaceVoiceLossConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(monitor="eer"))  # MONITORS
    data: DataConfig = field(default_factory=DataConfig)
    norm: NormConfig = field(default_factory=NormConfig)  # score normalisation, chosen on validation
    run: RunConfig = field(default_factory=RunConfig)

    def validate_config(self) -> None:
        """Cross-field and registry checks, run when the config is loaded (before any data)."""
        from modalink.models import list_models

        m = self.model
        if m.name == "single_branch":
            raise ValueError("model.name: single_branch is the generic single-branch model, which FAME does not "
                             "train; the FAME single-branch model is sbnet_stems")
        if m.name not in list_models():
            raise ValueError(f"model.name: {m.name!r} is not a registered model; known: {', '.join(list_models())}")
        if self.engine.monitor not in MONITORS:
            raise ValueError(f"engine.monitor: {self.engine.monitor!r} is not a validation metric of this recipe; "
                             f"valid monitors: {', '.join(MONITORS)}")
        if self.engine.monitor_mode != MONITORS[self.engine.monitor]:
            raise ValueError(f"engine.monitor_mode: {self.engine.monitor_mode!r} would keep the worst epoch for "
                             f"{self.engine.monitor}; use {MONITORS[self.engine.monitor]}")


def resolve_languages(ver: str, train_lang: str) -> list[str]:
    """The training languages ``train_lang`` names in ``ver``: both for ``all``, else the one."""
    langs = list(fame_languages(ver))
    if train_lang.lower() == "all":
        return langs
    return [normalize_language(ver, train_lang)]
