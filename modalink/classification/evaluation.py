"""Evaluation of missing-modality classifiers: ONE loop and ONE results shape for every method.

:func:`evaluate_conditions` scores every method on every split under every condition of the
shared vocabulary (:mod:`modalink.classification.conditions`); the masks are the protocol's, so
all methods see exactly the same missing inputs. The result (``results.json``) is::

    {"dataset": ..., "task": "multiclass", "metrics": ["accuracy"], "num_classes": 10,
     "conditions": ["complete", "text=30%", ...], "split": "test", "counts": {"test": 300, ...},
     "train_condition": "complete", "mask_seed": 0,
     "results": {method: {condition: {metric: value in %}}},          # the main split
     "other_splits": {split: {method: {condition: {metric: value}}}}, # only when more were evaluated
     ...}                                                             # recipe extras (ceiling, encoders)

It holds no wall times (those go to ``timings.json``), so identical runs write identical files.
:func:`format_table` renders it as Markdown (one table per metric, methods × conditions).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from modalink.classification.conditions import condition_mask, mask_file_name
from modalink.errors import InputError
from modalink.io import atomic_write_text
from modalink.progress import progress_bar

__all__ = ["METRIC_TITLES", "score", "predict_logits", "evaluate_conditions", "format_table", "write_results",
           "write_timings"]

METRIC_TITLES = {"accuracy": "accuracy", "auroc": "AUROC", "f1_macro": "macro F1", "f1_micro": "micro F1"}


def score(labels: np.ndarray, logits: np.ndarray, task: str) -> dict[str, float]:
    """Every metric that applies to ``task`` (in %): accuracy; AUROC (binary); macro/micro F1."""
    from modalink.metrics import accuracy, f1_scores, roc_auc

    if task == "multilabel":
        pred = (logits > 0).astype(np.int64)
        return {"f1_macro": 100 * f1_scores(labels.astype(np.int64), pred, "macro"),
                "f1_micro": 100 * f1_scores(labels.astype(np.int64), pred, "micro"),
                "accuracy": 100 * accuracy(labels.astype(np.int64), pred)}
    out = {"accuracy": 100 * accuracy(labels, logits)}
    if task == "binary" and logits.shape[1] == 2 and len(np.unique(labels)) == 2:
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        out["auroc"] = 100 * roc_auc(labels, p[:, 1])
    return out


def predict_logits(module: nn.Module, dataset: Any, collate: Callable[[Any], dict[str, Any]],
                   batch_size: int = 256, trainer: Any = None, progress: bool = False) -> np.ndarray:
    """Logits of ``module.run(batch)`` for every sample of ``dataset`` (eval mode); through
    ``trainer.predict`` (gathered across processes) when given, else on the module's device."""
    def fn(mod: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"logits": mod.run(batch)["logits"]}

    if len(dataset) == 0:
        raise InputError("cannot predict on an empty dataset")
    if trainer is not None:
        return trainer.predict(dataset, fn, batch_size=batch_size, collate_fn=collate, desc="eval")["logits"]
    device = next(module.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    was = module.training
    module.eval()
    parts = []
    try:
        with torch.no_grad():
            for batch in progress_bar(loader, desc="eval", leave=False, enabled=progress):
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                parts.append(fn(module, batch)["logits"].float().cpu())
    finally:
        module.train(was)
    return torch.cat(parts).numpy()


def evaluate_conditions(models: Mapping[str, tuple[nn.Module, Callable]], splits: Mapping[str, Any],
                        conditions: Sequence[str], *, task: str, metrics: Sequence[str], seed: int = 0,
                        batch_size: int = 256, trainers: Mapping[str, Any] | None = None,
                        mask_dir: str | os.PathLike | None = None, info: Mapping[str, Any] | None = None
                        ) -> dict[str, Any]:
    """Every metric of every method (``models``: name → (trainer module, eval collate)) on each
    split (``splits``: name → dataset with ``with_mask``/``labels``; the first is the main one)
    under each condition. Masks are saved to ``mask_dir`` when given. ``info`` is merged into the
    result (dataset description, class count, ...)."""
    if not splits:
        raise InputError("no split to evaluate")
    table: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for split, data in splits.items():
        for cond in conditions:
            m = condition_mask(len(data), split, cond, seed)
            if mask_dir is not None:
                m.save(Path(mask_dir) / mask_file_name(split, cond))
            view = data.with_mask(m.image, m.text)
            for name, (module, collate) in models.items():
                trainer = trainers.get(name) if trainers else None
                logits = predict_logits(module, view, collate, batch_size=batch_size, trainer=trainer)
                values = score(np.asarray(data.labels), logits, task)
                table.setdefault(split, {}).setdefault(name, {})[cond] = {k: round(v, 2) for k, v in values.items()}
    main = next(iter(splits))
    out: dict[str, Any] = {**dict(info or {}), "task": task, "metrics": list(metrics),
                           "conditions": list(conditions), "split": main,
                           "counts": {**dict((info or {}).get("counts", {})), **{s: len(d) for s, d in splits.items()}},
                           "mask_seed": seed,
                           "results": table[main]}
    others = {s: t for s, t in table.items() if s != main}
    if others:
        out["other_splits"] = others
    return out


def format_table(res: Mapping[str, Any], titles: Mapping[str, str] | None = None) -> str:
    """Markdown tables (one per metric): rows = methods, columns = conditions, plus the drop from
    complete data to the worst condition; other splits, a ceiling row and references when present."""
    titles = dict(titles or {})
    conds = list(res["conditions"])
    lines = [f"Test results on {res['dataset']} ({res['counts'][res['split']]} {res['split']} samples; training "
             f"data: {res['train_condition']}). Columns: share of {res['split']} samples that keep each modality.",
             ""]

    def tables(results: Mapping[str, Any], split: str, with_ceiling: bool) -> list[str]:
        methods = list(results)
        present = [k for k in res["metrics"] if all(k in results[m][c] for m in methods for c in conds)]
        rows: list[str] = []
        for metric in present or ["accuracy"]:
            has_drop = "complete" in conds and len(conds) > 1
            head = "| method | " + " | ".join(conds) + (" | drop (complete → worst) |" if has_drop else " |")
            where = "" if split == res["split"] else f", {split} split"
            rows += [f"**{METRIC_TITLES.get(metric, metric)} (%){where}**", "", head,
                     "|---|" + "---:|" * (len(conds) + int(has_drop))]
            for m in methods:
                vals = [results[m][c][metric] for c in conds]
                row = f"| {titles.get(m, m)} | " + " | ".join(f"{v:.1f}" for v in vals)
                if has_drop:
                    full = results[m]["complete"][metric]
                    worst = min(v for c, v in zip(conds, vals) if c != "complete")
                    row += f" | {full - worst:.1f}"
                rows.append(row + " |")
            if with_ceiling and metric == "accuracy" and res.get("ceiling"):
                rows.append("| ceiling (best possible on this data) | " + " | ".join(
                    f"{res['ceiling'][c]:.1f}" for c in conds) + (" | |" if has_drop else " |"))
            rows.append("")
        return rows

    lines += tables(res["results"], res["split"], True)
    for split, results in res.get("other_splits", {}).items():
        lines += tables(results, split, False)
    refs = res.get("references")
    if refs:
        cols = list(next(iter(refs.values())))
        lines += ["Published results (reference, not measured here):", "",
                  "| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for name, row in refs.items():
            lines.append(f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in cols) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_results(res: Mapping[str, Any], out_dir: str | os.PathLike, stem: str = "results",
                  titles: Mapping[str, str] | None = None) -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (atomic writes)."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(res, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / f"{stem}.md", format_table(res, titles))


def write_timings(timings: Mapping[str, Any], out_dir: str | os.PathLike, stem: str = "timings") -> None:
    """Wall times of a command (kept out of ``results.json`` so identical runs give identical files)."""
    atomic_write_text(Path(out_dir) / f"{stem}.json", json.dumps(timings, indent=2) + "\n")
