"""Classification datasets as released: one record type, one Dataset, one bad-file policy, one registry.

Loaders (one module per release layout, in :mod:`modalink.classification.sources`) parse their release's files into
:class:`MultimodalRecord` lists and hand them to :func:`build_dataset`, which checks images,
fills a :class:`LoadReport` and returns a :class:`MultimodalDataset`:

* ``load_food101``       — :mod:`modalink.classification.sources.food101` (UPMC Food-101, multiclass)
* ``load_mmimdb``        — :mod:`modalink.classification.sources.mmimdb` (MM-IMDb, 23 genres, multilabel)
* ``load_hateful_memes`` — :mod:`modalink.classification.sources.hateful_memes` (binary, AUROC)
* ``load_ferramenta``    — :mod:`modalink.classification.sources.ferramenta` (multiclass)
* :func:`load_dataset` dispatches by name.

Bad-file policy (the same for every loader):

* malformed rows — unparsable CSV/JSON line, wrong field count, unknown class, empty text,
  bad label — raise :class:`DatasetFormatError` naming file and line (``on_error="raise"``,
  default) or are skipped and counted (``on_error="skip"``);
* images that are missing at load time (and, with ``verify_images=True``, images PIL cannot
  open) are skipped and counted by default (``on_missing_image="skip"``) or raise
  (``on_missing_image="raise"``). Without ``verify_images`` images are only opened in
  ``__getitem__``; an unreadable one then raises an error naming the file.

Skips are counted by reason in ``dataset.report`` and logged (logger ``modalink.classification``).

``dataset[i]`` is a dict ``{"image": tensor | None, "text": str | None, "label": ...,
"index": i, "has_image": bool, "has_text": bool, "id": str}`` that honours the dataset's
missing-modality mask (:mod:`modalink.classification.missing`): a masked image is not even read.
:func:`collate_multimodal` batches such dicts (missing images become zero tensors).
"""
from __future__ import annotations

import copy
import importlib
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from modalink.classification.missing import MissingModalityMask
from modalink.errors import FileFormatError, InputError, UnknownNameError
from modalink.images import ImageError, read_image, verify_image
from modalink.progress import progress_bar

__all__ = [
    "DatasetFormatError", "MultimodalRecord", "LoadReport", "MultimodalDataset", "Task",
    "default_image_transform", "collate_multimodal", "build_dataset", "RowIssues",
    "seeded_split", "load_dataset", "list_datasets", "dataset_name",
]

logger = logging.getLogger(__name__)

Task = Literal["multiclass", "multilabel", "binary"]
OnError = Literal["raise", "skip"]


class DatasetFormatError(FileFormatError):
    """A dataset file is malformed; ``path`` and ``line`` (1-based, when known) say where."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None) -> None:
        super().__init__(path, message, line)

    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)


@dataclass(frozen=True)
class MultimodalRecord:
    """One sample: an image file, a text and a label.

    ``label`` is a class index (multiclass/binary), a sorted tuple of class indices
    (multilabel) or ``None`` (unlabelled test files). ``image``/``text`` may be ``None`` when
    the release itself lacks them. ``source`` says where the record came from ("file:line").
    """

    id: str
    image: str | None
    text: str | None
    label: int | tuple[int, ...] | None
    source: str = ""


@dataclass
class LoadReport:
    """What a loader read and what it skipped (``skipped``: reason → count)."""

    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        s = f"{self.kept} of {self.rows} records kept"
        if self.skipped:
            s += "; skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
        if self.notes:
            s += "; notes: " + ", ".join(f"{k}={v}" for k, v in sorted(self.notes.items()))
        return s


class RowIssues:
    """Applies the bad-file policy while a loader parses rows (see module docstring)."""

    MAX_EXAMPLES = 10

    def __init__(self, report: LoadReport, on_error: OnError = "raise",
                 on_missing_image: OnError = "skip") -> None:
        for name, v in (("on_error", on_error), ("on_missing_image", on_missing_image)):
            if v not in ("raise", "skip"):
                raise InputError(f"{name} must be 'raise' or 'skip', got {v!r}")
        self.report = report
        self.on_error = on_error
        self.on_missing_image = on_missing_image

    def _record(self, reason: str, path: str | os.PathLike, line: int | None, message: str) -> None:
        self.report.skipped[reason] += 1
        if len(self.report.examples) < self.MAX_EXAMPLES:
            self.report.examples.append(str(DatasetFormatError(path, message, line)))

    def malformed(self, reason: str, path: str | os.PathLike, line: int | None, message: str) -> None:
        """A malformed row: raise, or count it under ``reason``."""
        if self.on_error == "raise":
            raise DatasetFormatError(path, message + " (on_error='skip' skips such rows)", line)
        self._record(reason, path, line, message)

    def labelled_row(self, path: str | os.PathLike, line: int | None, image: str, label: str, text: str,
                     class_to_index: Mapping[str, int], image_what: str = "image path",
                     text_what: str = "text") -> int | None:
        """The class index of an (image, label, text) row, or ``None`` after applying the policy to
        an empty image field, an unknown class or an empty text (checked in that order)."""
        if not image:
            self.malformed("malformed_row", path, line, f"empty {image_what}")
            return None
        if label not in class_to_index:
            why = " (a non-finite number is never a class label)" if is_non_finite_number(label) else ""
            self.malformed("unknown_class", path, line, f"unknown class {label!r}{why}")
            return None
        if not text:
            self.malformed("empty_text", path, line, f"empty {text_what} for {image}")
            return None
        return class_to_index[label]

    def bad_image(self, reason: str, path: str | os.PathLike, line: int | None, message: str) -> None:
        """A missing/unreadable image: count it under ``reason``, or raise."""
        if self.on_missing_image == "raise":
            raise DatasetFormatError(path, message, line)
        self._record(reason, path, line, message)


def is_non_finite_number(text: str) -> bool:
    """Whether ``text`` spells nan or an infinity (``nan``, ``-inf``, ``Infinity``, ``1e999``)."""
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _split_source(source: str) -> tuple[str, int | None]:
    path, _, line = source.rpartition(":")
    if path and line.isdigit():
        return path, int(line)
    return source, None


class _DirIndex:
    """Cached directory listings: existence checks for 100k images without 100k stats."""

    def __init__(self) -> None:
        self._dirs: dict[str, frozenset[str]] = {}

    def exists(self, path: str) -> bool:
        d, name = os.path.split(path)
        names = self._dirs.get(d)
        if names is None:
            try:
                names = frozenset(os.listdir(d or "."))
            except OSError:
                names = frozenset()
            self._dirs[d] = names
        return name in names


def _verify_image(path: str) -> ImageError | None:
    """Why ``path`` is not a readable image (:func:`modalink.images.verify_image`), or ``None``."""
    try:
        verify_image(path)
        return None
    except ImageError as e:
        return e


def default_image_transform(image: Any) -> torch.Tensor:
    """PIL RGB image → float tensor ``3×H×W`` in [0, 1] (no resize, no normalisation)."""
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class MultimodalDataset(Dataset):
    """A torch Dataset over :class:`MultimodalRecord` s with an optional missing-modality mask.

    Attributes: ``records``, ``classes`` (index → name), ``class_to_index``, ``task``
    ("multiclass" | "multilabel" | "binary"), ``name``, ``split``, ``root``, ``transform``
    (PIL image → tensor; default :func:`default_image_transform`), ``mask``, ``report``,
    ``metrics`` (the literature's metrics for this dataset, e.g. ``("f1_macro", "f1_micro")``).
    """

    def __init__(
        self,
        records: Sequence[MultimodalRecord],
        classes: Sequence[str],
        task: Task,
        *,
        name: str = "",
        split: str = "",
        root: str | os.PathLike | None = None,
        transform: Callable[[Any], Any] | None = None,
        mask: MissingModalityMask | None = None,
        report: LoadReport | None = None,
        metrics: Sequence[str] = (),
    ) -> None:
        if task not in ("multiclass", "multilabel", "binary"):
            raise InputError(f"task must be 'multiclass', 'multilabel' or 'binary', got {task!r}")
        self.records = list(records)
        self.classes = list(classes)
        self.class_to_index = {c: i for i, c in enumerate(self.classes)}
        self.task: Task = task
        self.name = name
        self.split = split
        self.root = Path(root) if root is not None else None
        self.transform = transform
        self.report = report or LoadReport(rows=len(self.records), kept=len(self.records))
        self.metrics = tuple(metrics)
        self.mask: MissingModalityMask | None = None
        if mask is not None:
            self._check_mask(mask)
            self.mask = mask

    # -- sizes and arrays ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def texts(self) -> list[str | None]:
        """Texts as the model sees them (``None`` where missing or masked)."""
        return [r.text if self.has_text(i) else None for i, r in enumerate(self.records)]

    @property
    def image_paths(self) -> list[str | None]:
        return [r.image for r in self.records]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        """``(n,)`` int64 (-1 = unlabelled) or, for multilabel, an ``(n, K)`` 0/1 float32 matrix."""
        if self.task == "multilabel":
            out = np.zeros((len(self), self.num_classes), dtype=np.float32)
            for i, r in enumerate(self.records):
                if r.label is not None:
                    out[i, list(r.label)] = 1.0
            return out
        return np.array([-1 if r.label is None else r.label for r in self.records], dtype=np.int64)

    # -- modality availability -----------------------------------------------------------------
    def has_image(self, i: int) -> bool:
        return self.records[i].image is not None and (self.mask is None or bool(self.mask.image[i]))

    def has_text(self, i: int) -> bool:
        return self.records[i].text is not None and (self.mask is None or bool(self.mask.text[i]))

    def availability(self) -> tuple[np.ndarray, np.ndarray]:
        """``(has_image, has_text)``: bool arrays over the records (the release's gaps and the mask)."""
        n = len(self)
        return (np.fromiter((self.has_image(i) for i in range(n)), dtype=bool, count=n),
                np.fromiter((self.has_text(i) for i in range(n)), dtype=bool, count=n))

    def _check_mask(self, mask: MissingModalityMask) -> None:
        if len(mask) != len(self):
            raise InputError(f"mask has {len(mask)} entries but {self.name or 'the'} {self.split} "
                             f"dataset has {len(self)} samples")

    def with_mask(self, mask: MissingModalityMask | None) -> "MultimodalDataset":
        """A shallow copy that honours ``mask`` (``None``: complete modalities)."""
        if mask is not None:
            self._check_mask(mask)
        other = copy.copy(self)
        other.mask = mask
        return other

    def subset(self, indices: Sequence[int] | np.ndarray) -> "MultimodalDataset":
        """A new dataset with the selected records (the mask, if any, is subset too)."""
        idx = [int(i) for i in indices]
        other = copy.copy(self)
        other.records = [self.records[i] for i in idx]
        other.mask = self.mask.subset(idx) if self.mask is not None else None
        return other

    # -- items --------------------------------------------------------------------------------
    def load_image(self, i: int) -> Any:
        """Read record ``i``'s image as RGB (:func:`modalink.images.read_image`) and apply
        ``transform``; errors name the file."""
        rec = self.records[i]
        if rec.image is None:
            raise InputError(f"record {rec.id!r} has no image")
        try:
            img = read_image(rec.image)
        except ImageError as e:
            where = f" (listed at {rec.source})" if rec.source else ""
            raise DatasetFormatError(rec.image, f"cannot read image{where}: {e.detail} ({e.reason})") from e
        return (self.transform or default_image_transform)(img)

    def label_of(self, i: int) -> Any:
        """Label of record ``i``: int (-1 if unlabelled) or a multi-hot float tensor (multilabel)."""
        label = self.records[i].label
        if self.task == "multilabel":
            t = torch.zeros(self.num_classes, dtype=torch.float32)
            if label is not None:
                t[list(label)] = 1.0
            return t
        return -1 if label is None else int(label)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = i % len(self)
        rec = self.records[i]
        has_image, has_text = self.has_image(i), self.has_text(i)
        return {
            "image": self.load_image(i) if has_image else None,
            "text": rec.text if has_text else None,
            "label": self.label_of(i),
            "index": i,
            "has_image": has_image,
            "has_text": has_text,
            "id": rec.id,
        }

    def __repr__(self) -> str:
        m = f", mask={self.mask.name}" if self.mask is not None else ""
        return (f"MultimodalDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"task={self.task!r}, classes={self.num_classes}{m})")


def collate_multimodal(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch ``dataset[i]`` dicts: images stacked (zeros where missing; ``None`` if none present),
    texts as a list (``None`` where missing), labels/index/has_* as tensors, ids as a list."""
    n = len(batch)
    images = [b["image"] for b in batch]
    ref = next((x for x in images if x is not None), None)
    stacked = None
    if ref is not None:
        if not isinstance(ref, torch.Tensor):
            raise TypeError("collate_multimodal needs tensor images: set a transform that returns tensors")
        stacked = torch.zeros((n, *ref.shape), dtype=ref.dtype)
        for i, x in enumerate(images):
            if x is None:
                continue
            if x.shape != ref.shape:
                raise ValueError(f"images of shapes {tuple(ref.shape)} and {tuple(x.shape)} in one batch: "
                                 "set a transform that resizes to one size")
            stacked[i] = x
    labels = [b["label"] for b in batch]
    label_t = torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels, dtype=torch.long)
    return {
        "image": stacked,
        "text": [b["text"] for b in batch],
        "label": label_t,
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "has_image": torch.tensor([b["has_image"] for b in batch], dtype=torch.bool),
        "has_text": torch.tensor([b["has_text"] for b in batch], dtype=torch.bool),
        "id": [b["id"] for b in batch],
    }


def build_dataset(
    records: Sequence[MultimodalRecord],
    *,
    issues: RowIssues,
    classes: Sequence[str],
    task: Task,
    name: str,
    split: str,
    root: str | os.PathLike,
    transform: Callable[[Any], Any] | None = None,
    verify_images: bool = False,
    metrics: Sequence[str] = (),
) -> MultimodalDataset:
    """Check images (existence; with ``verify_images`` also PIL-open), apply the image policy,
    finish the report, log skips and build the dataset."""
    report = issues.report
    index = _DirIndex()
    kept: list[MultimodalRecord] = []
    it = progress_bar(records, desc=f"verify {name} {split} images", unit="img",
              enabled=verify_images and len(records) >= 1000)
    for rec in it:
        if rec.image is not None:
            path, line = _split_source(rec.source)
            if not index.exists(rec.image):
                issues.bad_image("missing_image", path, line, f"image file not found: {rec.image}")
                continue
            if verify_images:
                err = _verify_image(rec.image)
                if err is not None:
                    issues.bad_image(err.reason, path, line, f"cannot read image {rec.image}: {err.detail}")
                    continue
        kept.append(rec)
    report.kept = len(kept)
    if report.skipped:
        logger.warning("%s %s: %s; first: %s", name, split, report.summary(), report.examples[0])
    else:
        logger.info("%s %s: %s", name, split, report.summary())
    return MultimodalDataset(kept, classes, task, name=name, split=split, root=root,
                             transform=transform, report=report, metrics=metrics)


def seeded_split(ids: Sequence[str], sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Deterministic disjoint split: positions into ``ids`` for each part, of the given sizes.

    The order depends only on the sorted ids and the seed (not on file order); the last part
    takes whatever remains when ``sum(sizes) < len(ids)``.
    """
    n = len(ids)
    if sum(sizes) > n:
        raise InputError(f"split sizes {list(sizes)} exceed {n} items")
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    perm = order[np.random.default_rng(seed).permutation(n)]
    parts, start = [], 0
    for k, size in enumerate(sizes):
        end = n if k == len(sizes) - 1 else start + size
        parts.append(np.sort(perm[start:end]))
        start = end
    return parts


# ---------------------------------------------------------------------------------------------
_LOADERS: dict[str, tuple[str, str]] = {
    "food101": ("modalink.classification.sources.food101", "load_food101"),
    "mmimdb": ("modalink.classification.sources.mmimdb", "load_mmimdb"),
    "hateful_memes": ("modalink.classification.sources.hateful_memes", "load_hateful_memes"),
    "ferramenta": ("modalink.classification.sources.ferramenta", "load_ferramenta"),
}
_ALIASES = {"upmc_food101": "food101", "food-101": "food101", "upmc-food101": "food101",
            "mm-imdb": "mmimdb", "hateful-memes": "hateful_memes", "hatefulmemes": "hateful_memes"}


def list_datasets() -> list[str]:
    """Names :func:`load_dataset` knows."""
    return sorted(_LOADERS)


def dataset_name(name: str) -> str:
    """The registered name of ``name`` (case and the usual spellings such as ``food-101`` are
    accepted); an unknown name raises :class:`~modalink.errors.UnknownNameError` listing the known ones."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _LOADERS:
        raise UnknownNameError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}")
    return key


def load_dataset(name: str, root: str | os.PathLike, split: str = "train", **kwargs: Any) -> MultimodalDataset:
    """Load a classification dataset by name (``food101``, ``mmimdb``, ``hateful_memes``,
    ``ferramenta``); ``kwargs`` go to that loader."""
    module, fn = _LOADERS[dataset_name(name)]
    return getattr(importlib.import_module(module), fn)(root, split, **kwargs)
