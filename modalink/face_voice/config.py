"""Wiring shared by the FAME recipe's train.py, evaluate.py and verify.py (config, data, scoring,
report, exported models).

The work itself lives in the library (modalink.face_voice, modalink.data, modalink.hub) and in
challenge; this file only connects them to the recipe's folders and command line. It is found
because Python puts a script's own folder first on ``sys.path``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn
from cli_common import DEFAULT_CONFIG, HERE, add_data_arguments

from challenge import read_ground_truth, write_submission
from modalink.config import optional
from modalink.data import (FACE_DIM, VOICE_DIM, FameTestSet, FeatureFileError, fame_languages, generate_synthetic_fame,
                           normalize_language, other_language)
from modalink.engine import EngineConfig
from modalink.face_voice import (FaceVoiceLossConfig, FaceVoiceModelConfig,
                                 pair_distances)
from modalink.io import atomic_write_text
from modalink.metrics import fame_eer
from modalink.score_norm import NormConfig

#: the validation metrics train.py computes (engine.monitor) and the direction that is better
MONITORS = {"eer": "min"}
#: what train.py writes besides the shared run files: one folder per (version, training language)
RUN_ENTRIES = tuple(f"{ver}_{lang}" for ver in ("v1", "v2", "v3") for lang in fame_languages(ver))


@dataclass
class DataConfig:
    """The ``data:`` section."""

    val_ids: int | None = optional(legacy=0, ge=1)  # identities held out for model selection (None: val_fraction)
    val_fraction: float = 0.1
    val_trials: int = 4000  # balanced face-voice trials among the validation rows
    split_seed: int = 0
    face_dim: int | None = optional(legacy=0, ge=1)  # None: from feature_info.json next to the CSVs, else 4096
    voice_dim: int | None = optional(legacy=0, ge=1)  # None: from feature_info.json, else 512
    cache_dir: str | None = None  # binary feature cache (None: <feats-root>/.modalink_cache)


@dataclass
class RunConfig:
    """The ``run:`` section, filled from the command line and saved with the run."""

    feats_root: str | None = None  # None until the run resolves it (--feats-root, or the synthetic set's folder)
    ver: str = "v3"
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
        if m.name not in ("single_branch",) and m.name not in list_models():
            raise ValueError(f"model.name: {m.name!r} is not a registered model; known: {', '.join(list_models())}")
        if not 0 <= m.dropout < 1:
            raise ValueError(f"model.dropout: {m.dropout} must be in [0, 1)")
        if m.embed_dim < 1:
            raise ValueError(f"model.embed_dim: {m.embed_dim} must be >= 1")
        if m.init not in ("default", "xavier"):
            raise ValueError(f"model.init: {m.init!r}; use default or xavier")
        if self.loss.opl_on not in ("fused", "modalities", "both"):
            raise ValueError(f"loss.opl_on: {self.loss.opl_on!r}; use fused, modalities or both")
        for k in ("ce", "opl", "infonce", "aam", "align"):
            if getattr(self.loss, k) < 0:
                raise ValueError(f"loss.{k}: {getattr(self.loss, k)} must be >= 0")
        if not 0 < self.data.val_fraction < 1:
            raise ValueError(f"data.val_fraction: {self.data.val_fraction} must be in (0, 1)")
        if self.data.val_trials < 2:
            raise ValueError(f"data.val_trials: {self.data.val_trials} must be >= 2")
        if self.engine.monitor not in MONITORS:
            raise ValueError(f"engine.monitor: {self.engine.monitor!r} is not a validation metric of this recipe; "
                             f"valid monitors: {', '.join(MONITORS)}")
        if self.engine.monitor_mode != MONITORS[self.engine.monitor]:
            raise ValueError(f"engine.monitor_mode: {self.engine.monitor_mode!r} would keep the worst epoch for "
                             f"{self.engine.monitor}; use {MONITORS[self.engine.monitor]}")


def resolve_languages(ver: str, train_lang: str) -> list[str]:
    langs = list(fame_languages(ver))
    if train_lang.lower() == "all":
        return langs
    return [normalize_language(ver, train_lang)]


def prepare_feats_root(feats_root: str | None, output_dir: Path, ver: str, seed: int = 0) -> tuple[Path, bool]:
    """The feature root to use (its layout checked); with none given, a deterministic synthetic set
    (made once, with a progress bar on a terminal)."""
    from modalink.data import check_fame_layout
    from modalink.progress import announce

    if feats_root:  # a command-line value: an empty --feats-root "" is not given
        root = Path(feats_root)
        check_fame_layout(root, ver)
        announce(f"reading {ver} features from {root} (cached as .npy after the first read) ...")
        return root, False
    root = output_dir / "synthetic_data"
    announce(f"synthetic MAV-Celeb-like {ver} set in {root} (generated once, about a minute; reused after) ...")
    generate_synthetic_fame(root, ver=ver, seed=seed, progress=True)
    return root, True


def feature_dims(root: Path, ver: str, cfg: DataConfig) -> tuple[int, int]:
    """Face/voice widths: config → ``feats/<ver>/feature_info.json`` (prepare.py) → official."""
    face, voice = cfg.face_dim, cfg.voice_dim
    info_path = root / "feats" / ver / "feature_info.json"
    if (face is None or voice is None) and info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
            face = int(info["face_dim"]) if face is None else face
            voice = int(info["voice_dim"]) if voice is None else voice
        except (ValueError, KeyError, TypeError) as exc:
            raise FeatureFileError(info_path, f"is not a valid feature_info.json ({exc}); it needs integer "
                                   f"'face_dim' and 'voice_dim' (or set data.face_dim= and data.voice_dim=)") from None
    return FACE_DIM if face is None else face, VOICE_DIM if voice is None else voice


def default_ground_truth(root: Path, ver: str, given: str | None) -> Path | None:
    """``--ground-truth`` when given, else ``<root>/ground_truth/<ver>`` when it exists, else None."""
    if given:  # a command-line value: an empty --ground-truth "" is not given
        p = Path(given)
        if not p.is_dir():
            raise FileNotFoundError(f"--ground-truth {p} is not a folder")
        return p
    p = root / "ground_truth" / ver
    return p if p.is_dir() else None


def check_ground_truth(gt_dir: Path | None, test_sets: list[FameTestSet]) -> None:
    """Before training: every pair-list key has a ground-truth label and vice versa."""
    if gt_dir is None:
        return
    for t in test_sets:
        gt_path = gt_dir / f"{t.test_language}_test.txt"
        if not gt_path.is_file():
            raise FileNotFoundError(f"ground truth {gt_path} is missing (--ground-truth {gt_dir} has no file for "
                                    f"{t.test_language}); add it or drop --ground-truth")
        gt = read_ground_truth(gt_path)
        keys = t.keys
        missing = [k for k in keys if k not in gt]
        extra = set(gt) - set(keys)
        if missing or extra:
            example = missing[0] if missing else sorted(extra)[0]
            raise FeatureFileError(gt_path, f"does not match the pair list {t.pair_file}: {len(missing)} pair-list "
                                   f"key(s) have no label and {len(extra)} label(s) have no pair (e.g. "
                                   f"{example!r}); use the ground truth of the same release")


def data_fingerprint(feats: dict[str, Any], gt_dir: Path | None) -> dict[str, str]:
    """Content digests of every file a run reads (features, pair lists, ground truth)."""
    from modalink.data.fame_cache import file_digest

    out: dict[str, str] = {}
    for f in feats.values():
        out.update(f.digests)
    if gt_dir is not None:
        for p in sorted(gt_dir.glob("*_test.txt")):
            out[f"ground_truth/{p.name}"] = file_digest(p)
    return dict(sorted(out.items()))


def load_model_from_run(lang_dir: Path, face_dim: int | None = None, voice_dim: int | None = None, *,
                        feature_info: dict[str, Any] | None | bool = False) -> nn.Module:
    """The model a training run exported to ``<lang_dir>/model`` (:func:`modalink.hub.from_pretrained`),
    refused (:class:`modalink.face_voice_model.ModelMismatchError`) when it was trained for another
    version or language than its ``<ver>_<Lang>`` folder says, or, with ``face_dim``/``voice_dim``/
    ``feature_info`` given, on other features."""
    from modalink.face_voice_model import check_trained_for
    from modalink.hub import from_pretrained

    folder = lang_dir / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no exported model in {folder}: the run has not finished (run the same train.py "
                                f"command again to resume and export it)")
    model = from_pretrained(folder)
    ver, _, lang = lang_dir.name.partition("_")
    check_trained_for(model.export_config.get("contract", {}), where=folder, ver=ver or None, train_lang=lang or None,
                      face_dim=face_dim, voice_dim=voice_dim, feature_info=feature_info)
    return model


def read_feature_info(root: Path, ver: str) -> dict[str, Any] | None:
    """The ``feature_info.json`` prepare.py wrote for ``ver`` under ``root`` (``feats/<ver>/``, or the
    test-side copy; found as the verifier finds it), or ``None``."""
    from modalink.face_voice_verify import find_feature_info

    info = find_feature_info(root, ver)
    if info is None:
        return None
    try:
        data = json.loads(info.read_text())
    except ValueError as exc:
        raise FeatureFileError(info, f"is not valid JSON ({exc}); rerun prepare.py or remove it") from None
    return data if isinstance(data, dict) else None


def export_models(out: Path, ver: str, models: dict[str, nn.Module], contract: dict[str, Any],
                  config: dict[str, Any], results: dict[str, Any]) -> None:
    """Export each language's model to ``<out>/<ver>_<Lang>/model`` with its EERs on the model card
    and its training language in its contract."""
    from modalink.hub import save_pretrained

    for lang, model in models.items():
        rows = {f"EER {r['train']}->{r['test']} ({r['condition']})": r["eer"]
                for r in results.get("eer", []) if r["train"] == lang}
        title = f"modalink FAME {ver} face-voice model trained on {lang}"
        if (contract.get("feature_info") or {}).get("random_weights"):
            title += " (on features from RANDOM-WEIGHT encoders: a plumbing check, its scores mean nothing)"
        save_pretrained(model, out / f"{ver}_{lang}" / "model", contract={**contract, "train_lang": lang},
                        config=config, results=rows, title=title)


def model_contract(root: Path, ver: str, face_dim: int, voice_dim: int) -> dict[str, Any]:
    """What a FAME model reads and was trained for: version, feature widths, the features' source
    (prepare.py's ``feature_info.json`` when present) and the score direction; :func:`export_models`
    adds the training language."""
    from modalink.face_voice_model import trained_for

    info = read_feature_info(root, ver)
    contract: dict[str, Any] = {**trained_for(ver, None, face_dim, voice_dim, info),
                                "score": "L2 distance of the scoring embeddings (lower = same person)"}
    if info is not None:
        contract["feature_info"] = info
    return contract


def score_test_sets(model: nn.Module, test_sets: list[FameTestSet], train_lang: str
                    ) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """Distances (lower = same) for each test set, keyed by (train_lang, test_lang)."""
    return {(train_lang, t.test_language): (t.keys, pair_distances(model, t.faces, t.voices)) for t in test_sets}


def write_fame_results(output_dir: Path, ver: str, scores: dict[tuple[str, str], tuple[list[str], np.ndarray]],
                  pairs_dir: Path, gt_dir: Path | None, edition: str, extra: dict[str, Any] | None = None,
                  timings: dict[str, Any] | None = None, manifest_info: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Write the submission folder (via ``challenge``: staged, swapped in whole, with a manifest),
    ``results.{json,md}`` and ``timings.json``. ``results.json`` holds no wall times, so the same
    run gives the same file byte for byte (a resumed run included)."""
    sub_dir = output_dir / "submission"
    written = write_submission(sub_dir, scores, edition=edition, pairs_dir=pairs_dir, info=manifest_info)
    results: dict[str, Any] = {"ver": ver, "submission": "submission",
                               "files": sorted(p.name for p in written.values()), **(extra or {})}
    if gt_dir is not None:
        rows = []
        for (train, test), (keys, dist) in sorted(scores.items()):
            gt_path = gt_dir / f"{test}_test.txt"
            gt = read_ground_truth(gt_path)
            lacking = [k for k in keys if k not in gt]
            if lacking:
                raise FeatureFileError(gt_path, f"has no label for {len(lacking)} scored key(s), e.g. {lacking[0]!r}")
            labels = np.array([gt[k] for k in keys])
            cond = "heard" if train == test else "unheard"
            rows.append({"train": train, "test": test, "condition": cond, "eer": fame_eer(labels, dist)})
        results["eer"] = rows
        results["mean_eer"] = float(np.mean([r["eer"] for r in rows]))
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(output_dir / "results.md", format_results(results))
    if timings:
        atomic_write_text(output_dir / "timings.json", json.dumps(timings, indent=2) + "\n")
        results = {**results, **timings}
    return results


def format_results(results: dict[str, Any]) -> str:
    lines = [f"# FAME {results['ver']} results", ""]
    if "eer" in results:
        lines += ["| train | test | condition | EER (%) |", "|---|---|---|---|"]
        lines += [f"| {r['train']} | {r['test']} | {r['condition']} | {r['eer']:.2f} |" for r in results["eer"]]
        lines += ["", f"**mean EER: {results['mean_eer']:.2f} %** (lower is better)"]
    else:
        lines.append("(no ground truth given: EERs not computed)")
    from fame_scoring import format_norm

    lines += format_norm(results)
    if "seconds" in results:
        lines += ["", f"wall time: {results['seconds']:.1f} s"]
    lines += ["", f"submission files in `{results['submission']}/`: " + ", ".join(results["files"]), ""]
    return "\n".join(lines)


__all__ = ["FameConfig", "DataConfig", "RunConfig", "DEFAULT_CONFIG", "RUN_ENTRIES", "add_data_arguments", "resolve_languages",
           "check_ground_truth", "data_fingerprint",
           "prepare_feats_root", "feature_dims", "default_ground_truth", "load_model_from_run", "read_feature_info",
           "export_models",
           "model_contract",
           "score_test_sets", "write_fame_results", "format_results", "other_language"]
