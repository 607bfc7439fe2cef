"""Ferramenta (Gallo et al. 2018): e-commerce product images + descriptions, multiclass.

Layout::

    <root>/text-image-train.csv     one product a line: ``text | label | image_path``
    <root>/text-image-val.csv

Fields are ``|``-separated (spaces around ``|`` are stripped). The text may itself contain
``|``: a line is split at its LAST two ``|``. ``image_path`` is relative to ``root`` (or
absolute). A first line whose label field reads ``label``/``class``/``category`` is a header
and is skipped. Classes are the distinct labels of the TRAIN file (numeric order when all are
integers, else sorted); a val label outside them is an unknown class. Splits: ``train``,
``val`` (``test`` is an alias of ``val``: the release has no separate test file).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from modalink.classification.records import (LoadReport, MultimodalDataset, MultimodalRecord, OnError,
                                             RowIssues, build_dataset, is_non_finite_number)
from modalink.errors import InputError

__all__ = ["load_ferramenta", "ferramenta_classes"]

_HEADER_LABELS = {"label", "class", "category", "labels"}


def _rows(path: Path) -> Iterator[tuple[int, str, list[str] | None]]:
    """(line number, raw line, [text, label, image] or None when malformed)."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.rsplit("|", 2)
            if len(parts) != 3:
                yield line_no, line, None
                continue
            fields = [p.strip() for p in parts]
            if line_no == 1 and fields[1].lower() in _HEADER_LABELS:
                continue
            yield line_no, line, fields


def _sort_labels(labels: set[str]) -> list[str]:
    if labels and all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def ferramenta_classes(root: str | os.PathLike) -> list[str]:
    """Class names: the distinct labels of ``text-image-train.csv`` (see module docstring)."""
    path = Path(root) / "text-image-train.csv"
    if not path.is_file():
        raise FileNotFoundError(f"Ferramenta train file not found: {path}")
    labels = {f[1] for _, _, f in _rows(path) if f is not None and f[1]}
    return _sort_labels({lab for lab in labels if not is_non_finite_number(lab)})


def load_ferramenta(
    root: str | os.PathLike,
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    transform: Callable[[Any], Any] | None = None,
    on_error: OnError = "raise",
    on_missing_image: OnError = "skip",
    verify_images: bool = False,
) -> MultimodalDataset:
    """Load the Ferramenta ``train`` or ``val`` (alias ``test``) file."""
    part = {"train": "train", "val": "val", "test": "val"}.get(split)
    if part is None:
        raise InputError(f"unknown Ferramenta split {split!r}; use train or val")
    root = Path(root)
    path = root / f"text-image-{part}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"Ferramenta file not found: {path}")
    classes = list(classes) if classes is not None else ferramenta_classes(root)
    class_to_index = {c: i for i, c in enumerate(classes)}
    report = LoadReport(details={"source": path.name})
    issues = RowIssues(report, on_error, on_missing_image)
    records: list[MultimodalRecord] = []
    for line_no, line, fields in _rows(path):
        report.rows += 1
        if fields is None:
            issues.malformed("malformed_row", path, line_no,
                             f"expected 'text | label | image_path', got {line[:80]!r}")
            continue
        text, label, image = fields
        index = issues.labelled_row(path, line_no, image, label, text, class_to_index)
        if index is None:
            continue
        records.append(MultimodalRecord(id=image, image=str(root / image), text=text,
                                        label=index, source=f"{path}:{line_no}"))
    return build_dataset(records, issues=issues, classes=classes, task="multiclass", name="ferramenta",
                         split=split, root=root, transform=transform, verify_images=verify_images,
                         metrics=("accuracy",))
