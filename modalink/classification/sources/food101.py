"""UPMC Food-101 (Wang et al. 2015): 101 food classes, web photos + page titles.

Layout::

    <root>/images/{train,test}/<class>/<class>_N.jpg
    <root>/texts/{train,test}_titles.csv     headerless: image file, title, class

Splits: ``test`` is the release's test file (22,716 rows); ``train`` and ``val`` are carved
from the train file (67,988 rows) by a seeded permutation of the sorted image names, with
``val_fraction`` (default 6846/67988 → the common 61,142 / 6,846 split); ``trainval`` is the
whole train file. A title that contains commas must be CSV-quoted; rows with more than three
fields are read as ``image, title..., class`` (the middle fields joined with commas).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from modalink.classification.records import (LoadReport, MultimodalDataset, MultimodalRecord, OnError,
                                             RowIssues, build_dataset, seeded_split)
from modalink.errors import InputError

__all__ = ["FOOD101_VAL_FRACTION", "FOOD101_SPLITS", "load_food101", "food101_classes"]

FOOD101_VAL_FRACTION = 6846 / 67988
FOOD101_SPLITS = ("train", "val", "trainval", "test")


def food101_classes(root: str | os.PathLike) -> list[str]:
    """Class names: the sorted class folders under ``images/train`` and ``images/test``."""
    root = Path(root)
    found: set[str] = set()
    for part in ("train", "test"):
        d = root / "images" / part
        if d.is_dir():
            found.update(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"{root}: no class folders under images/train or images/test "
                                f"(expected the UPMC Food-101 layout images/{{train,test}}/<class>/)")
    return sorted(found)


def _read_titles(path: Path, part: str, root: Path, class_to_index: dict[str, int],
                 issues: RowIssues) -> list[MultimodalRecord]:
    if not path.is_file():
        raise FileNotFoundError(f"Food-101 titles file not found: {path}")
    records: list[MultimodalRecord] = []
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                issues.report.rows += 1
                issues.malformed("malformed_row", path, reader.line_num, f"CSV error: {e}")
                continue
            line = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            issues.report.rows += 1
            if len(row) < 3:
                issues.malformed("malformed_row", path, line,
                                 f"expected 3 fields (image file, title, class), got {len(row)}")
                continue
            image, title, label = row[0].strip(), ",".join(row[1:-1]).strip(), row[-1].strip()
            index = issues.labelled_row(path, line, image, label, title, class_to_index,
                                        image_what="image file name", text_what="title")
            if index is None:
                continue
            rel = image if "/" in image else f"{label}/{image}"
            records.append(MultimodalRecord(
                id=Path(image).name, image=str(root / "images" / part / rel), text=title,
                label=index, source=f"{path}:{line}"))
    return records


def load_food101(
    root: str | os.PathLike,
    split: str = "train",
    *,
    val_fraction: float = FOOD101_VAL_FRACTION,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    transform: Callable[[Any], Any] | None = None,
    on_error: OnError = "raise",
    on_missing_image: OnError = "skip",
    verify_images: bool = False,
) -> MultimodalDataset:
    """Load one split of UPMC Food-101 (``train``, ``val``, ``trainval`` or ``test``)."""
    if split not in FOOD101_SPLITS:
        raise InputError(f"unknown Food-101 split {split!r}; use one of {', '.join(FOOD101_SPLITS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    classes = list(classes) if classes is not None else food101_classes(root)
    class_to_index = {c: i for i, c in enumerate(classes)}
    report = LoadReport()
    issues = RowIssues(report, on_error, on_missing_image)
    part = "test" if split == "test" else "train"
    records = _read_titles(root / "texts" / f"{part}_titles.csv", part, root, class_to_index, issues)
    if split in ("train", "val"):
        n_val = int(round(val_fraction * len(records)))
        train_idx, val_idx = seeded_split([r.id for r in records], [len(records) - n_val, n_val], seed)
        records = [records[i] for i in (train_idx if split == "train" else val_idx)]
        report.details.update(val_fraction=val_fraction, seed=seed, file_rows=report.rows)
        report.rows = len(records)  # rows of this split (malformed-row skips count file-wide)
    report.details["source"] = f"texts/{part}_titles.csv"
    return build_dataset(records, issues=issues, classes=classes, task="multiclass", name="food101",
                         split=split, root=root, transform=transform, verify_images=verify_images,
                         metrics=("accuracy",))
