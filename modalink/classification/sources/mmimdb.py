"""MM-IMDb (Arevalo et al. 2017): 25,959 movies, posters + plots, 23 genres, multi-label.

Layout (as released)::

    <root>/split.json              {"train": [ids], "dev": [ids], "test": [ids]}
    <root>/dataset/<id>.jpeg       poster
    <root>/dataset/<id>.json       {"plot": [str, ...], "genres": [str, ...], ...}

``root`` may also be the ``dataset`` folder itself (``split.json`` is then looked up next to
it and one level up). Splits: ``train``, ``val`` (= ``dev``), ``test`` — from ``split.json``
when present (15,552 / 2,608 / 7,799), else a seeded split of the sorted ids in the same
proportions (recorded in ``dataset.report.details["split_source"]``).

Labels are the 23 genres of the paper (:data:`MMIMDB_GENRES`); other genres in the JSON files
(e.g. "News", "Adult") are ignored and counted in ``report.notes``. A movie with none of the
23 genres, or with no plot, is a malformed record. ``plot`` chooses the text among the plot
list: ``"first"`` (default), ``"longest"`` or ``"join"`` (all, space-separated).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Literal

from modalink.classification.records import (DatasetFormatError, LoadReport, MultimodalDataset, MultimodalRecord,
                                             OnError, RowIssues, build_dataset, seeded_split)
from modalink.errors import InputError

__all__ = ["MMIMDB_GENRES", "MMIMDB_SPLIT_SIZES", "load_mmimdb"]

MMIMDB_GENRES = (
    "Drama", "Comedy", "Romance", "Thriller", "Crime", "Action", "Adventure", "Horror",
    "Documentary", "Mystery", "Sci-Fi", "Fantasy", "Family", "Biography", "War", "History",
    "Music", "Animation", "Musical", "Western", "Sport", "Short", "Film-Noir",
)
MMIMDB_SPLIT_SIZES = {"train": 15552, "dev": 2608, "test": 7799}
_SPLIT_KEYS = {"train": "train", "val": "dev", "dev": "dev", "test": "test"}


def _find_layout(root: Path) -> tuple[Path, Path | None]:
    data_dir = root / "dataset" if (root / "dataset").is_dir() else root
    if not data_dir.is_dir():
        raise FileNotFoundError(f"MM-IMDb folder not found: {root}")
    for cand in (root / "split.json", data_dir / "split.json", data_dir.parent / "split.json"):
        if cand.is_file():
            return data_dir, cand
    return data_dir, None


def _split_ids(data_dir: Path, split_file: Path | None, key: str, seed: int,
               report: LoadReport) -> list[str]:
    if split_file is not None:
        try:
            splits = json.loads(split_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DatasetFormatError(split_file, f"invalid JSON: {e.msg}", e.lineno) from None
        if not isinstance(splits, dict) or key not in splits or not isinstance(splits[key], list):
            raise DatasetFormatError(split_file, f"expected an object with a list under {key!r}")
        report.details["split_source"] = str(split_file)
        return [str(i) for i in splits[key]]
    ids = sorted(p.stem for p in data_dir.glob("*.json") if p.name != "split.json")
    if not ids:
        raise FileNotFoundError(f"{data_dir}: no <id>.json files and no split.json")
    total = sum(MMIMDB_SPLIT_SIZES.values())
    n_train = int(round(len(ids) * MMIMDB_SPLIT_SIZES["train"] / total))
    n_dev = int(round(len(ids) * MMIMDB_SPLIT_SIZES["dev"] / total))
    parts = seeded_split(ids, [n_train, n_dev, len(ids) - n_train - n_dev], seed)
    report.details["split_source"] = f"seeded(seed={seed})"
    pos = {"train": 0, "dev": 1, "test": 2}[key]
    return [ids[i] for i in parts[pos]]


def _pick_plot(plot: Any, how: str) -> str | None:
    if isinstance(plot, str):
        plots = [plot]
    elif isinstance(plot, list) and all(isinstance(p, str) for p in plot):
        plots = [p.strip() for p in plot if p.strip()]
    else:
        return None
    plots = [p.strip() for p in plots if p.strip()]
    if not plots:
        return ""
    if how == "first":
        return plots[0]
    if how == "longest":
        return max(plots, key=len)
    return " ".join(plots)


def load_mmimdb(
    root: str | os.PathLike,
    split: str = "train",
    *,
    plot: Literal["first", "longest", "join"] = "first",
    seed: int = 0,
    transform: Callable[[Any], Any] | None = None,
    on_error: OnError = "raise",
    on_missing_image: OnError = "skip",
    verify_images: bool = False,
) -> MultimodalDataset:
    """Load one split of MM-IMDb (``train``, ``val``/``dev`` or ``test``); multi-label genres."""
    if split not in _SPLIT_KEYS:
        raise InputError(f"unknown MM-IMDb split {split!r}; use train, val (dev) or test")
    if plot not in ("first", "longest", "join"):
        raise InputError(f"plot must be 'first', 'longest' or 'join', got {plot!r}")
    root = Path(root)
    data_dir, split_file = _find_layout(root)
    report = LoadReport()
    issues = RowIssues(report, on_error, on_missing_image)
    genre_index = {g: i for i, g in enumerate(MMIMDB_GENRES)}
    records: list[MultimodalRecord] = []
    for movie_id in _split_ids(data_dir, split_file, _SPLIT_KEYS[split], seed, report):
        report.rows += 1
        meta_path = data_dir / f"{movie_id}.json"
        if not meta_path.is_file():
            issues.malformed("missing_metadata", split_file or data_dir, None,
                             f"metadata file for id {movie_id!r} not found: {meta_path}")
            continue
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError as e:
            issues.malformed("malformed_row", meta_path, e.lineno, f"invalid JSON: {e.msg}")
            continue
        if not isinstance(meta, dict):
            issues.malformed("malformed_row", meta_path, 1, "expected a JSON object")
            continue
        text = _pick_plot(meta.get("plot"), plot)
        if text is None:
            issues.malformed("malformed_row", meta_path, None, "'plot' must be a list of strings")
            continue
        if not text:
            issues.malformed("empty_text", meta_path, None, "empty plot")
            continue
        genres = meta.get("genres")
        if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
            issues.malformed("malformed_row", meta_path, None, "'genres' must be a list of strings")
            continue
        labels = sorted({genre_index[g.strip()] for g in genres if g.strip() in genre_index})
        for g in genres:
            if g.strip() not in genre_index:
                report.notes[f"ignored_genre:{g.strip()}"] += 1
        if not labels:
            issues.malformed("unknown_class", meta_path, None,
                             f"none of the genres {genres} is among the 23 MM-IMDb genres")
            continue
        image = data_dir / f"{movie_id}.jpeg"
        if not image.exists() and (data_dir / f"{movie_id}.jpg").exists():
            image = data_dir / f"{movie_id}.jpg"
        records.append(MultimodalRecord(id=movie_id, image=str(image), text=text, label=tuple(labels),
                                        source=str(meta_path)))
    return build_dataset(records, issues=issues, classes=list(MMIMDB_GENRES), task="multilabel",
                         name="mmimdb", split=split, root=root, transform=transform,
                         verify_images=verify_images, metrics=("f1_macro", "f1_micro"))
