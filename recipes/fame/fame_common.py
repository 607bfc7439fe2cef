"""Wiring shared by the FAME recipe's train.py and evaluate.py (config, data, scoring, report).

The work itself lives in the library (modalink.face_voice, modalink.data, challenge); this file
only connects them to the recipe's folders and command line.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from challenge import read_ground_truth, write_submission  # noqa: E402
from modalink.data import (FACE_DIM, VOICE_DIM, FameTestSet, fame_languages, generate_synthetic_fame,  # noqa: E402
                           normalize_language, other_language)
from modalink.engine import EngineConfig  # noqa: E402
from modalink.face_voice import (FaceVoiceLossConfig, FaceVoiceModelConfig, build_face_voice_model,  # noqa: E402
                                 pair_distances)
from modalink.io import atomic_write_text  # noqa: E402
from modalink.metrics import fame_eer  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "hparams" / "default.yaml"


@dataclass
class DataConfig:
    """The ``data:`` section."""

    val_ids: int = 0  # identities held out of training for model selection (0: use val_fraction)
    val_fraction: float = 0.1
    val_trials: int = 4000  # balanced face-voice trials among the validation rows
    split_seed: int = 0
    face_dim: int = 0  # 0: from feature_info.json next to the CSVs, else 4096
    voice_dim: int = 0  # 0: from feature_info.json, else 512
    cache_dir: str = ""  # binary feature cache ('' = <feats-root>/.modalink_cache)


@dataclass
class RunConfig:
    """The ``run:`` section, filled from the command line and saved with the run."""

    feats_root: str = ""
    ver: str = "v3"
    train_langs: list[str] = field(default_factory=list)
    output_dir: str = "runs/fame"
    ground_truth: str = ""
    edition: str = "2026"
    synthetic: bool = False


@dataclass
class FameConfig:
    """Everything a FAME run is defined by."""

    model: FaceVoiceModelConfig = field(default_factory=FaceVoiceModelConfig)
    loss: FaceVoiceLossConfig = field(default_factory=FaceVoiceLossConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)


def add_data_arguments(parser: Any) -> None:
    """The data/output options shared by train.py and evaluate.py."""
    parser.add_argument("--feats-root", default=None,
                        help="folder holding feats/, preExtracted_vggFace_utteranceLevel_Features/ and "
                             "face_voice_association_splits/ (default: generate a synthetic MAV-Celeb-like "
                             "set under <output-dir>/synthetic_data)")
    parser.add_argument("--ver", default="v3", choices=["v1", "v2", "v3"], help="MAV-Celeb version")
    parser.add_argument("--train-lang", default="all",
                        help="training language, or 'all' for both languages of the version (the full "
                             "4-condition FAME protocol)")
    parser.add_argument("--ground-truth", default=None,
                        help="folder of <Lang>_test.txt files with 'key label' lines, to compute EERs "
                             "(default: <feats-root>/ground_truth/<ver> when it exists)")
    parser.add_argument("--edition", default="2026", help="submission naming: 2026 or 2024")


def resolve_languages(ver: str, train_lang: str) -> list[str]:
    langs = list(fame_languages(ver))
    if train_lang.lower() == "all":
        return langs
    return [normalize_language(ver, train_lang)]


def prepare_feats_root(feats_root: str | None, output_dir: Path, ver: str, seed: int = 0) -> tuple[Path, bool]:
    """The feature root to use; with none given, a deterministic synthetic set (made once)."""
    if feats_root:
        root = Path(feats_root)
        if not root.is_dir():
            raise FileNotFoundError(f"--feats-root {root} does not exist")
        return root, False
    root = output_dir / "synthetic_data"
    generate_synthetic_fame(root, ver=ver, seed=seed)
    return root, True


def feature_dims(root: Path, ver: str, cfg: DataConfig) -> tuple[int, int]:
    """Face/voice widths: config → ``feats/<ver>/feature_info.json`` (prepare.py) → official."""
    face, voice = cfg.face_dim, cfg.voice_dim
    info_path = root / "feats" / ver / "feature_info.json"
    if (not face or not voice) and info_path.is_file():
        info = json.loads(info_path.read_text())
        face = face or int(info["face_dim"])
        voice = voice or int(info["voice_dim"])
    return face or FACE_DIM, voice or VOICE_DIM


def default_ground_truth(root: Path, ver: str, given: str | None) -> Path | None:
    if given:
        p = Path(given)
        if not p.is_dir():
            raise FileNotFoundError(f"--ground-truth {p} is not a folder")
        return p
    p = root / "ground_truth" / ver
    return p if p.is_dir() else None


def load_model_from_run(lang_dir: Path, cfg: FameConfig, face_dim: int, voice_dim: int) -> nn.Module:
    """Rebuild the model of a finished training run and load ``best_model.pt``."""
    import torch

    ckpt_path = lang_dir / "best_model.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"no trained model at {ckpt_path}; run train.py first")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    n_classes = state["logits_layer.weight"].shape[0] if "logits_layer.weight" in state else \
        state["head.weight"].shape[0]
    model = build_face_voice_model(cfg.model, face_dim, voice_dim, n_classes)
    model.load_state_dict(state)
    return model.eval()


def score_test_sets(model: nn.Module, test_sets: list[FameTestSet], train_lang: str
                    ) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """Distances (lower = same) for each test set, keyed by (train_lang, test_lang)."""
    return {(train_lang, t.test_language): (t.keys, pair_distances(model, t.faces, t.voices)) for t in test_sets}


def write_results(output_dir: Path, ver: str, scores: dict[tuple[str, str], tuple[list[str], np.ndarray]],
                  pairs_dir: Path, gt_dir: Path | None, edition: str, extra: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """Write the submission files (via ``challenge``) and, with ground truth, the EER table."""
    sub_dir = output_dir / "submission"
    written = write_submission(sub_dir, scores, edition=edition, pairs_dir=pairs_dir)
    results: dict[str, Any] = {"ver": ver, "submission": str(sub_dir),
                               "files": sorted(p.name for p in written.values()), **(extra or {})}
    if gt_dir is not None:
        rows = []
        for (train, test), (keys, dist) in sorted(scores.items()):
            gt = read_ground_truth(gt_dir / f"{test}_test.txt")
            labels = np.array([gt[k] for k in keys])
            cond = "heard" if train == test else "unheard"
            rows.append({"train": train, "test": test, "condition": cond, "eer": fame_eer(labels, dist)})
        results["eer"] = rows
        results["mean_eer"] = float(np.mean([r["eer"] for r in rows]))
    atomic_write_text(output_dir / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(output_dir / "results.md", format_results(results))
    return results


def format_results(results: dict[str, Any]) -> str:
    lines = [f"# FAME {results['ver']} results", ""]
    if "eer" in results:
        lines += ["| train | test | condition | EER (%) |", "|---|---|---|---|"]
        lines += [f"| {r['train']} | {r['test']} | {r['condition']} | {r['eer']:.2f} |" for r in results["eer"]]
        lines += ["", f"**mean EER: {results['mean_eer']:.2f} %** (lower is better)"]
    else:
        lines.append("(no ground truth given: EERs not computed)")
    if "seconds" in results:
        lines += ["", f"wall time: {results['seconds']:.1f} s"]
    lines += ["", f"submission files in `{results['submission']}`: " + ", ".join(results["files"]), ""]
    return "\n".join(lines)


__all__ = ["FameConfig", "DataConfig", "RunConfig", "DEFAULT_CONFIG", "add_data_arguments", "resolve_languages",
           "prepare_feats_root", "feature_dims", "default_ground_truth", "load_model_from_run",
           "score_test_sets", "write_results", "format_results", "other_language"]
