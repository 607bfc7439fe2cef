"""Hateful Memes (Kiela et al. 2020): meme images + their overlaid text, binary, AUROC.

Layout::

    <root>/img/<id>.png
    <root>/{train,dev_seen,test_seen,dev_unseen,test_unseen}.jsonl   (phase 1: dev, test)

Each line is a JSON object ``{"id", "img", "text", "label"}``; ``img`` is relative to
``root`` (``"img/42953.png"``). ``label`` may be absent (phase-1 ``test.jsonl``): the record
is then unlabelled (label -1). Split names are file names; when no such file exists,
``val`` means ``dev_seen`` (else ``dev``) and ``test`` means ``test_seen``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from modalink.classification.records import (LoadReport, MultimodalDataset, MultimodalRecord, OnError,
                                             RowIssues, build_dataset)

__all__ = ["HATEFUL_MEMES_CLASSES", "HATEFUL_MEMES_SPLITS", "load_hateful_memes"]

HATEFUL_MEMES_CLASSES = ("not_hateful", "hateful")
HATEFUL_MEMES_SPLITS = ("train", "dev_seen", "test_seen", "dev_unseen", "test_unseen", "dev", "test")
_ALIASES = {"val": ("dev_seen", "dev"), "test": ("test_seen", "test"), "dev": ("dev_seen", "dev")}


def _split_file(root: Path, split: str) -> Path:
    exact = root / f"{split}.jsonl"
    if exact.is_file():
        return exact
    for cand in _ALIASES.get(split, ()):
        if (root / f"{cand}.jsonl").is_file():
            return root / f"{cand}.jsonl"
    have = sorted(p.stem for p in root.glob("*.jsonl"))
    raise FileNotFoundError(f"no Hateful Memes file for split {split!r} in {root} "
                            f"(found: {', '.join(have) or 'none'})")


def load_hateful_memes(
    root: str | os.PathLike,
    split: str = "train",
    *,
    transform: Callable[[Any], Any] | None = None,
    on_error: OnError = "raise",
    on_missing_image: OnError = "skip",
    verify_images: bool = False,
) -> MultimodalDataset:
    """Load one Hateful Memes split (a ``<split>.jsonl`` name, or ``val``/``test`` aliases)."""
    root = Path(root)
    path = _split_file(root, split)
    report = LoadReport(details={"source": path.name})
    issues = RowIssues(report, on_error, on_missing_image)
    records: list[MultimodalRecord] = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            report.rows += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                issues.malformed("malformed_row", path, line_no, f"invalid JSON: {e.msg}")
                continue
            if not isinstance(obj, dict):
                issues.malformed("malformed_row", path, line_no, "expected a JSON object")
                continue
            missing = [k for k in ("id", "img", "text") if k not in obj]
            if missing:
                issues.malformed("malformed_row", path, line_no, f"missing field(s) {missing}")
                continue
            text = obj["text"]
            if not isinstance(text, str) or not text.strip():
                issues.malformed("empty_text", path, line_no, f"empty text for id {obj['id']}")
                continue
            label = obj.get("label")
            if label is not None:
                if isinstance(label, bool) or label not in (0, 1):
                    issues.malformed("unknown_class", path, line_no, f"label must be 0 or 1, got {label!r}")
                    continue
                label = int(label)
            img = str(obj["img"])
            if not img:
                issues.malformed("malformed_row", path, line_no, "empty 'img' field")
                continue
            records.append(MultimodalRecord(id=str(obj["id"]), image=str(root / img), text=text.strip(),
                                            label=label, source=f"{path}:{line_no}"))
    return build_dataset(records, issues=issues, classes=list(HATEFUL_MEMES_CLASSES), task="binary",
                         name="hateful_memes", split=split, root=root, transform=transform,
                         verify_images=verify_images, metrics=("auroc", "accuracy"))
