"""Evaluation of the SRMM recipe: accuracy at several text-availability rates on train and test,
SRMM and the late-fusion baseline side by side, with the published figures as references."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch.nn as nn

from modalink.io import atomic_write_text
from modalink.metrics import accuracy

from srmm_core import SRMMConfig, predict_logits, rate_label
from srmm_data import PreparedData

MODEL_TITLES = {"srmm": "SRMM (single branch, switching)", "late_fusion": "Late fusion (two branches)"}

# UPMC Food-101 test accuracy (%) reported in SRMM (arXiv 2408.07445) and, for ViLT, in Ma et al.
# (CVPR 2022) as quoted there: complete data / 30 % of the test samples with text.
PUBLISHED = {
    "SRMM (arXiv 2408.07445)": {"complete": 94.6, "30% text": 84.8},
    "ViLT (Ma et al. 2022)": {"complete": 91.9, "30% text": 65.9},
}


def evaluate_models(models: Mapping[str, nn.Module], data: PreparedData, cfg: SRMMConfig,
                    trainers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Accuracy of every model on ``cfg.missing.eval_splits`` at each ``cfg.missing.eval_text`` rate.

    The text masks come from :meth:`PreparedData.text_mask` (the shared missing-modality
    protocol), so every model sees exactly the same missing texts.
    """
    rates = [float(r) for r in cfg.missing.eval_text]
    acc: dict[str, dict[str, dict[str, float]]] = {}
    counts: dict[str, int] = {}
    for split in cfg.missing.eval_splits:
        full = data.eval_set(split, cfg)
        counts[split] = len(full)
        for rate in rates:
            view = full.with_text_mask(data.text_mask(split, rate, cfg, n=len(full)))
            for name, model in models.items():
                trainer = trainers.get(name) if trainers else None
                logits = predict_logits(model, view, trainer=trainer)
                acc.setdefault(name, {}).setdefault(split, {})[rate_label(rate)] = round(
                    100.0 * accuracy(view.label.numpy(), logits), 2)
    return {"dataset": data.description, "num_classes": data.num_classes, "counts": counts,
            "image_encoder": data.image_encoder, "text_encoder": data.text_encoder,
            "train_text": cfg.missing.train_text, "mask_seed": cfg.missing.seed,
            "columns": [rate_label(r) for r in rates], "accuracy": acc, "published_food101": PUBLISHED}


def format_table(results: Mapping[str, Any]) -> str:
    """The results as a Markdown table (accuracy %, one row per model and split)."""
    cols = list(results["columns"])
    lines = [f"Accuracy (%) on {results['dataset']} — text available for the given share of samples "
             f"(training: {round(100 * results['train_text']):g}% text)", "",
             "| model | split | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, per_split in results["accuracy"].items():
        for split, row in per_split.items():
            lines.append(f"| {MODEL_TITLES.get(name, name)} | {split} | "
                         + " | ".join(f"{row[c]:.1f}" for c in cols) + " |")
    lines += ["", "Published, UPMC Food-101 test (reference, not measured here):", "",
              "| model | complete | 30% text |", "|---|---|---|"]
    for name, row in results["published_food101"].items():
        lines.append(f"| {name} | {row['complete']:.1f} | {row['30% text']:.1f} |")
    if "wall_time_s" in results:
        lines += ["", f"Wall time (prepare + train + evaluate): {results['wall_time_s']:.0f} s"]
    return "\n".join(lines) + "\n"


def write_results(results: Mapping[str, Any], out_dir: str | Path) -> None:
    """``results.json`` and ``results.md`` in ``out_dir`` (atomic writes)."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, default=str))
    atomic_write_text(out_dir / "results.md", format_table(results))
