"""The embedding-extraction-and-cache pipeline of methods on features (SRMM, late fusion):
Food-101 records, image/text embeddings extracted once into validated caches
(:mod:`modalink.data.embedding_cache`), and the :class:`~modalink.classification.datasets.EmbeddingSet` s
the trainer sees.

Cache layout (``data.cache_dir``, default ``<output_dir>/cache``)::

    <split>_image.npy / <split>_image.json    image embeddings + manifest
    <split>_text.npy  / <split>_text.json     text embeddings + manifest

Each row is named by its input (images: relative path, size and mtime; texts: a digest of the
title), so a changed split re-encodes only the rows the cache does not hold yet, and any other
mismatch rebuilds it (see :mod:`modalink.data.embedding_cache`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modalink.classification.conditions import condition_mask
from modalink.classification.datasets import EmbeddingSet
from modalink.data.embedding_cache import CacheKey, EmbeddingCache, file_row_ids, text_row_ids
from modalink.errors import InputError, UserError
from modalink.text.encoders import TextEncoder

if TYPE_CHECKING:
    from modalink.classification.srmm import SRMMConfig

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- records
@dataclass
class SplitRecords:
    """One split of a Food-101-style dataset, in dataset order."""

    split: str
    root: Path
    image_paths: list[Path]
    texts: list[str | None]
    labels: np.ndarray
    classes: list[str]
    titles_csv: Path | None = None
    has_image: np.ndarray | None = None
    has_text: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


FILE_PARTS = {"train": "trainval", "test": "test"}  # cache split name → load_food101 split


def load_records(root: str | os.PathLike, part: str) -> SplitRecords:
    """Every record of one Food-101 file (``train``: the whole train file, ``test``), in file order,
    through :func:`modalink.classification.sources.food101.load_food101`."""
    from modalink.classification.sources.food101 import load_food101

    if part not in FILE_PARTS:
        raise InputError(f"unknown Food-101 part {part!r}; use 'train' or 'test'")
    root = Path(root)
    ds = load_food101(root, FILE_PARTS[part])
    return SplitRecords(part, root, [Path(p) for p in ds.image_paths], ds.texts, ds.labels, list(ds.classes),
                        root / "texts" / f"{part}_titles.csv", *ds.availability())


def split_indices(root: str | os.PathLike, rec: SplitRecords, val_fraction: float | None,
                  seed: int) -> dict[str, np.ndarray]:
    """Rows of the train file that form ``load_food101``'s ``train`` and ``val`` splits."""
    from modalink.classification.sources.food101 import FOOD101_VAL_FRACTION, load_food101

    frac = FOOD101_VAL_FRACTION if val_fraction is None else val_fraction
    row = {str(p): i for i, p in enumerate(rec.image_paths)}
    out = {}
    for split in ("train", "val"):
        ds = load_food101(root, split, val_fraction=frac, seed=seed)
        try:
            out[split] = np.array([row[str(Path(p))] for p in ds.image_paths], dtype=np.int64)
        except KeyError as e:
            raise InputError(f"{root}: {split} split lists an image that is not in the train file: {e}") from None
    return out


def generate_synthetic(root: Path, cfg: SRMMConfig) -> Path:
    """Create (once; an identical existing copy is reused) the synthetic Food-101 data under ``root``."""
    from dataclasses import asdict

    from modalink.classification.synthetic_food101 import generate_synthetic_food101

    kwargs = asdict(cfg.data.synthetic)
    kwargs.update(kwargs.pop("options"))
    return Path(generate_synthetic_food101(root, **kwargs).root)


# ----------------------------------------------------------------------------- extraction
def split_keys(rec: SplitRecords, image_enc: Any, text_enc: TextEncoder) -> tuple[CacheKey, CacheKey]:
    """The image and text cache keys of one split (each row named by its input)."""
    return (CacheKey.for_rows(rec.split, "image", image_enc.config(), file_row_ids(rec.image_paths, rec.root)),
            CacheKey.for_rows(rec.split, "text", text_enc.config(), text_row_ids(rec.texts)))


def extract_split(rec: SplitRecords, cache: EmbeddingCache, image_enc: Any, text_enc: TextEncoder, *,
                  image_batch: int = 64, text_batch: int = 256, shard_size: int = 1024, force: bool = False,
                  progress: bool = True, keys: tuple[CacheKey, CacheKey] | None = None,
                  processes: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Image and text embeddings of one split, from the cache when valid, else extracted
    (``keys``: the split's :func:`split_keys` when the caller already has them; ``processes``:
    a launched job's :class:`~modalink.data.processes.Processes`, every process calls this and
    embeds one block of the rows)."""
    ikey, tkey = keys or split_keys(rec, image_enc, text_enc)
    image, _ = cache.get_or_build(
        ikey, lambda rows: image_enc.encode_paths([rec.image_paths[r] for r in rows], batch_size=image_batch),
        shard_size=shard_size, progress=progress, force=force, desc=f"{rec.split} images", processes=processes)
    text, _ = cache.get_or_build(
        tkey, lambda rows: text_enc.encode([rec.texts[r] for r in rows], batch_size=text_batch),
        shard_size=shard_size, progress=progress, force=force, desc=f"{rec.split} texts", processes=processes)
    return image, text


# ----------------------------------------------------------------------------- prepared data
@dataclass
class PreparedSplit:
    """Embeddings of one Food-101 file (``train`` or ``test``) in file order."""

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    has_image: np.ndarray
    has_text: np.ndarray


@dataclass
class PreparedData:
    """Embeddings of both files, the train/val/test row indices and the encoders' configs."""

    parts: dict[str, PreparedSplit]
    rows: dict[str, tuple[str, np.ndarray]]  # split → (part, row indices into that part)
    classes: list[str]
    root: Path
    cache_dir: Path
    image_encoder: dict[str, Any]
    text_encoder: dict[str, Any]
    description: str
    sources: dict[str, str]  # "<part>/<modality>" -> source hash of the cached array

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def dims(self) -> dict[str, int]:
        s = next(iter(self.parts.values()))
        return {"image": int(s.image.shape[1]), "text": int(s.text.shape[1])}

    def eval_set(self, split: str, cfg: SRMMConfig | None = None) -> EmbeddingSet:
        """All samples of ``split`` (``train``, ``val`` or ``test``) with their own availability."""
        if split not in self.rows:
            raise KeyError(f"unknown split {split!r}; known: {', '.join(self.rows)}")
        part, idx = self.rows[split]
        s = self.parts[part]
        return EmbeddingSet(s.image[idx], s.text[idx], s.labels[idx], s.has_image[idx], s.has_text[idx])

    def train_set(self, cfg: SRMMConfig) -> EmbeddingSet:
        """Training samples with the training condition (``missing.train``) applied."""
        ds = self.eval_set("train")
        if cfg.missing.train != "complete":
            m = condition_mask(len(ds), "train", cfg.missing.train, cfg.missing.seed)
            ds = ds.with_mask(m.image, m.text)
        return ds

    def fingerprint(self) -> dict[str, str]:
        """Content digests of the data a run reads (the caches' source hashes; see
        :meth:`modalink.engine.run_folder.RunFolder.bind_data`)."""
        return dict(sorted(self.sources.items()))

    def val_set(self, cfg: SRMMConfig) -> EmbeddingSet | None:
        ds = self.eval_set("val")
        return ds if len(ds) else None


def check_data_root(cfg: SRMMConfig) -> Path | None:
    """``data.root`` as a folder in the UPMC Food-101 layout (``None``: synthetic data); raises
    ``FileNotFoundError`` naming the folder otherwise."""
    if not cfg.data.root:
        return None
    root = Path(cfg.data.root).expanduser()
    if not (root / "texts").is_dir() or not (root / "images").is_dir():
        what = "does not exist" if not root.exists() else "is not in the UPMC Food-101 layout"
        raise UserError(f"--data-root {root} (data.root) {what}: expected "
                                "images/{train,test}/<class>/*.jpg and texts/{train,test}_titles.csv")
    return root


def resolve_root(cfg: SRMMConfig, out_dir: Path) -> tuple[Path, str]:
    """The dataset folder (generating the synthetic default when ``data.root`` is unset)."""
    root = check_data_root(cfg)
    if root is not None:
        return root, f"UPMC Food-101 at {root}"
    root = generate_synthetic(out_dir / "synthetic_data", cfg)
    s = cfg.data.synthetic
    opts = s.options
    img_ceiling = _ceiling(opts.get("image_text_cue", 0.0), s.n_text_groups)
    txt_ceiling = _ceiling(opts.get("title_visual_hint", 0.0), s.n_classes // s.n_text_groups)
    extra = "".join(f", {k} {v}" for k, v in sorted(opts.items()))
    return root, (f"synthetic Food-101 ({s.n_classes} classes = {s.n_classes // s.n_text_groups} visual x "
                  f"{s.n_text_groups} text groups, {s.n_train_per_class}+{s.n_test_per_class} per class, "
                  f"seed {s.seed}{extra}; image-only ceiling {100 * img_ceiling:.0f}%, "
                  f"text-only ceiling {100 * txt_ceiling:.0f}%)")


def _ceiling(p: float, n_other: int) -> float:
    """Best single-modality accuracy when the modality shows the other group with probability p."""
    return float(p) + (1.0 - float(p)) / n_other


@dataclass
class PreparePlan:
    """What :func:`prepare_all` will read, known before any embedding is extracted: the dataset
    folder, the records of both files and their cache keys (each row named by its input)."""

    root: Path
    description: str
    records: dict[str, SplitRecords]
    keys: dict[str, tuple[CacheKey, CacheKey]]
    image_encoder: Any
    text_encoder: TextEncoder

    def fingerprint(self) -> dict[str, str]:
        """Digests of the data a run reads ("<part>/<modality>" → the cache key's source hash),
        for :meth:`modalink.engine.run_folder.RunFolder.bind_data` before extraction starts."""
        return dict(sorted((f"{part}/{k.modality}", k.source_hash) for part, keys in self.keys.items() for k in keys))


def plan_all(cfg: SRMMConfig, out_dir: str | os.PathLike,
             encoders: tuple[Any, TextEncoder] | None = None) -> PreparePlan:
    """Generate synthetic data when needed and read both files' records and cache keys — no
    extraction (``encoders``: the ``(image, text)`` pair of :func:`build_encoders`, built here
    when omitted). Relative paths are read from the current folder."""
    if encoders is None:
        from modalink.classification.srmm import build_encoders

        encoders = build_encoders(cfg)
    image_enc, text_enc = encoders
    root, description = resolve_root(cfg, Path(out_dir))
    records: dict[str, SplitRecords] = {}
    keys: dict[str, tuple[CacheKey, CacheKey]] = {}
    for part in ("train", "test"):
        rec = load_records(root, part)
        if records and rec.classes != records["train"].classes:
            raise InputError(f"{root}: class lists of train and test differ ({len(records['train'].classes)} vs "
                             f"{len(rec.classes)})")
        records[part], keys[part] = rec, split_keys(rec, image_enc, text_enc)
    return PreparePlan(root, description, records, keys, image_enc, text_enc)


def prepare_all(cfg: SRMMConfig, out_dir: str | os.PathLike, progress: bool = True,
                encoders: tuple[Any, TextEncoder] | None = None, plan: PreparePlan | None = None,
                processes: Any = None) -> PreparedData:
    """Load or extract the embeddings of both files, as planned by :func:`plan_all` (``plan``: one
    the caller already made, e.g. to check the run's data before extracting; else made here;
    ``processes``: a launched job's processes, each embeds one block of rows, see
    :func:`extract_split`)."""
    plan = plan or plan_all(cfg, out_dir, encoders)
    cache = EmbeddingCache(Path(cfg.data.cache_dir).expanduser() if cfg.data.cache_dir else Path(out_dir) / "cache")
    parts: dict[str, PreparedSplit] = {}
    rows: dict[str, tuple[str, np.ndarray]] = {}
    for part, rec in plan.records.items():
        image, text = extract_split(rec, cache, plan.image_encoder, plan.text_encoder,
                                    image_batch=cfg.image_encoder.batch_size, text_batch=cfg.text_encoder.batch_size,
                                    shard_size=cfg.prepare.shard_size, force=cfg.prepare.force, progress=progress,
                                    keys=plan.keys[part], processes=processes)
        parts[part] = PreparedSplit(image, text, np.asarray(rec.labels, np.int64),
                                    np.asarray(rec.has_image, bool), np.asarray(rec.has_text, bool))
        if part == "train":
            for split, idx in split_indices(plan.root, rec, cfg.data.val_fraction, cfg.data.val_seed).items():
                rows[split] = ("train", idx)
        else:
            rows["test"] = ("test", np.arange(len(rec)))
    return PreparedData(parts, rows, plan.records["train"].classes, plan.root, cache.root,
                        plan.image_encoder.config(), plan.text_encoder.config(), plan.description, plan.fingerprint())
