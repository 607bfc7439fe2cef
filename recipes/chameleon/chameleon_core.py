"""Chameleon recipe internals: config, data (photos + texts → batches for each method), the
training wrapper, evaluation at several missing-modality conditions and the results table.

The scripts (``train.py``, ``evaluate.py``) only wire these together.

Methods (``methods:`` in the config):

* ``chameleon`` — :class:`modalink.models.image_classifier.ChameleonClassifier`: the text is
  rendered as an image (:class:`modalink.text2image.TextToImage`) and ONE visual backbone
  reads both the photo and the text image.
* ``multi_branch`` — :class:`modalink.models.image_classifier.MultiBranchClassifier`: an image
  network and a text network (MLP over mean word vectors or a hashed bag of words) fused late;
  a missing text is a zero vector.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from modalink.engine import EngineConfig
from modalink.io import atomic_write_text, load_torch_weights
from modalink.models.image_classifier import (ChameleonClassifier, MultiBranchClassifier,
                                              classification_loss)

METHODS = ("chameleon", "multi_branch")
METHOD_TITLES = {"chameleon": "Chameleon (text as image, one network)",
                 "multi_branch": "Multi-branch (image net + text net, late fusion)"}
METRIC_TITLES = {"accuracy": "accuracy", "auroc": "AUROC", "f1_macro": "macro F1", "f1_micro": "micro F1"}

# ----------------------------------------------------------------------------- config
@dataclass
class SyntheticConfig:
    """Arguments of the synthetic Food-101 generator (used when ``data.root`` is unset)."""

    n_classes: int = 10
    n_train_per_class: int = 100
    n_test_per_class: int = 30
    image_size: int = 64
    seed: int = 0
    n_text_groups: int = 2  # class = (visual group, text group)
    words_per_group: int = 6
    title_visual_hint: float = 0.0  # P(title also names the visual group): redundancy real titles have
    image_difficulty: float = 0.0  # photo clutter (0-1): the photo is harder to read than the title
    image_text_cue: float = 0.0  # P(photo also shows the text group): the image alone can decide
    evidence: str | None = None  # "complementary": neither modality alone decides (hint and cue stay 0)
    preset: str | None = None  # "complementary": the generator's COMPLEMENTARY preset (neither modality
    #                            decides alone); it replaces every field above except ``seed``


@dataclass
class DataConfig:
    dataset: str = "food101"  # food101 | mmimdb | hateful_memes | ferramenta
    root: str | None = None  # dataset folder; None: generate synthetic Food-101 data
    synthetic_dir: str | None = None  # where the synthetic data goes (default <output_dir>/data)
    train_split: str = "train"
    val_split: str | None = "val"  # None: hold out val_fraction of the training split
    test_split: str = "test"
    val_fraction: float = 0.1
    split_seed: int = 0
    loader_options: dict[str, Any] = field(default_factory=dict)  # extra loader arguments
    image_size: int = 64  # photos are resized (shorter side) and centre-cropped to this
    resize_ratio: float = 1.0  # shorter side = image_size * resize_ratio before the crop
    hflip: bool = False  # random horizontal flips of training photos
    in_memory: bool | None = None  # decode photos once into RAM (None: only for synthetic data)
    max_train: int = 0  # use at most this many training samples (0: all)
    max_test: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TextImageConfig:
    """Text → image rendering (Chameleon): word vectors quantised to RGB superpixels."""

    mode: str = "joint"  # joint (photo and text image, same network) | fused (text band on the photo)
    word_vectors: str | None = None  # word2vec/GloVe file; None: built-in hashed vectors
    dim: int = 300  # dimension of the hashed vectors (ignored with a file)
    superpixel: int = 3
    max_words: int | None = None  # default: what fits on the canvas
    band_height: int | None = None  # fused mode: text band rows (default image_size // 4)
    layout: str = "flow"  # flow (words back to back, the paper) | tiles (one compact block per word)
    word_gap: int = 0  # tiles layout: blank cells between word blocks
    repeat: bool = False  # repeat the words cyclically to fill the canvas
    seed: int = 0


@dataclass
class ChameleonConfig:
    backbone: str = "resnet18"
    pretrained: bool = False
    weights: str | None = None  # local weights file for the backbone
    drop_text: float = 0.3  # training-time modality dropout
    drop_image: float = 0.1
    dropout: float = 0.0
    aux_weight: float = 0.5  # joint mode: weight of the per-input losses (photo alone, text image alone)
    timm_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {img_size: 64} for ViTs


@dataclass
class BaselineConfig:
    backbone: str | None = None  # default: chameleon.backbone
    pretrained: bool | None = None  # default: chameleon.pretrained
    weights: str | None = None  # default: chameleon.weights
    text_encoder: str = "word-vectors"  # word-vectors (same vectors as Chameleon) | hashed-bow
    text_options: dict[str, Any] = field(default_factory=dict)  # e.g. {dim: 1024} for hashed-bow
    embed_dim: int = 256
    hidden: list[int] = field(default_factory=lambda: [256])
    fusion: str = "concat"  # concat | mean
    norm: str = "layer"
    dropout: float = 0.1
    drop_text: float = 0.0  # 0: trained on complete data, the usual multi-branch practice
    drop_image: float = 0.0
    epochs: int | None = None  # default: engine.epochs
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class MissingConfig:
    """Missing-modality protocol: condition labels in availability terms (modalink.data.missing)."""

    train: str = "complete"  # e.g. "text=70%": the training set itself misses 30 % of its texts
    eval: list[str] = field(default_factory=lambda: ["complete", "text=70%", "text=30%", "text=0%"])
    seed: int = 0  # masks use derive_seed(seed, split, condition), shared with the SRMM recipe


@dataclass
class ChameleonRecipeConfig:
    """The whole recipe (``hparams/*.yaml`` plus ``key=value`` overrides)."""

    output_dir: str = "runs/chameleon"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    data: DataConfig = field(default_factory=DataConfig)
    text_image: TextImageConfig = field(default_factory=TextImageConfig)
    chameleon: ChameleonConfig = field(default_factory=ChameleonConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    missing: MissingConfig = field(default_factory=MissingConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(
        epochs=10, batch_size=64, lr=1e-3, weight_decay=1e-4, scheduler="cosine", monitor="auto",
        monitor_mode="max"))

    def check(self) -> None:
        """Validate choices the dataclass types cannot express."""
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods={self.methods}: choose from {', '.join(METHODS)}")
        if self.text_image.mode not in ("joint", "fused"):
            raise ValueError(f"text_image.mode={self.text_image.mode!r}; use joint or fused")
        if self.baseline.fusion not in ("concat", "mean"):
            raise ValueError(f"baseline.fusion={self.baseline.fusion!r}; use concat or mean")
        from modalink.data.missing import parse_condition

        for c in [self.missing.train, *self.missing.eval]:
            parse_condition(c)


# ----------------------------------------------------------------------------- photos
class PhotoTransform:
    """PIL image → ``3×S×S`` uint8 tensor: resize the shorter side to ``S·ratio``, centre crop."""

    def __init__(self, size: int, ratio: float = 1.0) -> None:
        if size < 8:
            raise ValueError(f"data.image_size must be at least 8, got {size}")
        if ratio < 1.0:
            raise ValueError(f"data.resize_ratio must be >= 1, got {ratio}")
        self.size, self.ratio = int(size), float(ratio)

    def __call__(self, img: Any) -> torch.Tensor:
        from PIL import Image

        img = img.convert("RGB")
        w, h = img.size
        short = max(self.size, int(round(self.size * self.ratio)))
        s = short / min(w, h)
        nw, nh = max(self.size, int(round(w * s))), max(self.size, int(round(h * s)))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        arr = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class PhotoTextSet(Dataset):
    """Samples of one split: photo (uint8 ``3×S×S``), text, label and availability masks.

    Photos are read lazily from a :class:`modalink.data.classification.MultimodalDataset`
    (with a :class:`PhotoTransform`) or, after :meth:`load_into_memory`, from one uint8
    tensor. ``with_mask`` gives a view that also honours a missing-modality mask. Items are
    dicts; with photos in memory, ``__getitems__`` returns a whole batch at once.
    """

    def __init__(self, base: Any, texts: Sequence[str | None], labels: np.ndarray,
                 has_image: np.ndarray, has_text: np.ndarray, photos: torch.Tensor | None = None,
                 size: int = 64) -> None:
        self.base = base
        self.texts = list(texts)
        self.labels = np.asarray(labels)
        self.has_image = np.asarray(has_image, dtype=bool)
        self.has_text = np.asarray(has_text, dtype=bool)
        self.photos = photos
        self.size = int(size)
        n = len(self.texts)
        if not (len(self.labels) == len(self.has_image) == len(self.has_text) == n):
            raise ValueError("PhotoTextSet: texts, labels and masks differ in length")

    @classmethod
    def from_dataset(cls, ds: Any, size: int) -> "PhotoTextSet":
        """Wrap a ``MultimodalDataset`` (records' own availability and mask are kept)."""
        n = len(ds)
        has_image = np.fromiter((ds.has_image(i) for i in range(n)), dtype=bool, count=n)
        has_text = np.fromiter((ds.has_text(i) for i in range(n)), dtype=bool, count=n)
        texts = [r.text for r in ds.records]
        return cls(ds, texts, ds.labels, has_image, has_text, None, size)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    def _photo(self, i: int) -> torch.Tensor:
        if not self.has_image[i]:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8)
        if self.photos is not None:
            return self.photos[i]
        x = self.base.load_image(i)
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or tuple(x.shape) != (3, self.size, self.size):
            raise ValueError(f"photo {i} has shape {tuple(getattr(x, 'shape', ()))}: the dataset's transform "
                             f"must give 3x{self.size}x{self.size} uint8 tensors (PhotoTransform)")
        return x

    def _label(self, idx: Any) -> torch.Tensor:
        y = self.labels[idx]
        return torch.as_tensor(y, dtype=torch.float32 if self.multilabel else torch.long)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self._photo(i), "text": self.texts[i] if self.has_text[i] else None,
                "label": self._label(i), "has_image": bool(self.has_image[i]),
                "has_text": bool(self.has_text[i]), "index": i}

    def __getitems__(self, indices: Sequence[int]) -> Any:
        if self.photos is None:
            return [self[i] for i in indices]
        idx = np.asarray(list(indices), dtype=np.int64)
        t = torch.from_numpy(idx)
        keep_img = torch.from_numpy(self.has_image[idx])
        photos = self.photos[t] * keep_img.view(-1, 1, 1, 1).to(torch.uint8)
        return {"image": photos, "text": [self.texts[i] if self.has_text[i] else None for i in idx],
                "label": self._label(idx), "has_image": keep_img,
                "has_text": torch.from_numpy(self.has_text[idx]), "index": t}

    def load_into_memory(self, num_workers: int = 0, progress: bool = True) -> "PhotoTextSet":
        """Decode every available photo once into a uint8 tensor (returns ``self``)."""
        if self.photos is not None:
            return self
        photos = torch.zeros(len(self), 3, self.size, self.size, dtype=torch.uint8)
        rows = np.flatnonzero(self.has_image)
        loader = DataLoader(_PhotoReader(self.base, rows), batch_size=64, num_workers=num_workers,
                            collate_fn=lambda items: items)
        for batch in tqdm(loader, desc="decode photos", unit="batch", disable=not progress, leave=False):
            for i, x in batch:
                photos[i] = x
        self.photos = photos
        return self

    def with_mask(self, has_image: np.ndarray | None = None, has_text: np.ndarray | None = None) -> "PhotoTextSet":
        """A view whose availability is the AND of this set's and the given masks."""
        out = copy.copy(self)
        for name, m in (("has_image", has_image), ("has_text", has_text)):
            if m is not None:
                m = np.asarray(m, dtype=bool)
                if m.shape != (len(self),):
                    raise ValueError(f"{name} mask has shape {m.shape}, expected ({len(self)},)")
                setattr(out, name, getattr(self, name) & m)
        return out

    def subset(self, indices: Sequence[int] | np.ndarray) -> "PhotoTextSet":
        """The selected samples (photos in memory are subset; lazy sets subset the base dataset)."""
        idx = np.asarray(indices, dtype=np.int64)
        base = self.base.subset(idx) if self.photos is None else None
        photos = self.photos[torch.from_numpy(idx)] if self.photos is not None else None
        return PhotoTextSet(base, [self.texts[i] for i in idx], self.labels[idx], self.has_image[idx],
                            self.has_text[idx], photos, self.size)

    def labelled(self) -> "PhotoTextSet":
        """Only samples with a label (unlabelled rows have label -1)."""
        if self.multilabel:
            return self
        keep = np.flatnonzero(self.labels >= 0)
        return self if len(keep) == len(self) else self.subset(keep)


class _PhotoReader(Dataset):
    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor]:
        i = int(self.rows[k])
        return i, self.base.load_image(i)


# ----------------------------------------------------------------------------- batches
class BatchBuilder:
    """``collate_fn`` turning samples into a method's inputs.

    Chameleon batches get ``text_image`` (:class:`TextToImage`, vectorised over the batch;
    blank where text is missing); multi-branch batches get ``text_vec`` (the text encoder;
    zeros where text is missing). ``hflip`` flips photos at random (training only).
    """

    def __init__(self, kind: str, text_to_image: Any = None, text_encoder: Any = None,
                 hflip: bool = False) -> None:
        if kind not in METHODS:
            raise ValueError(f"unknown method {kind!r}; use {', '.join(METHODS)}")
        if kind == "chameleon" and text_to_image is None:
            raise ValueError("chameleon batches need a TextToImage")
        if kind == "multi_branch" and text_encoder is None:
            raise ValueError("multi_branch batches need a text encoder")
        self.kind, self.t2i, self.text_encoder, self.hflip = kind, text_to_image, text_encoder, hflip

    def __call__(self, items: Any) -> dict[str, Any]:
        if isinstance(items, Mapping):
            batch = dict(items)
        else:
            batch = {"image": torch.stack([it["image"] for it in items]),
                     "text": [it["text"] for it in items],
                     "label": torch.stack([torch.as_tensor(it["label"]) for it in items]),
                     "has_image": torch.tensor([it["has_image"] for it in items], dtype=torch.bool),
                     "has_text": torch.tensor([it["has_text"] for it in items], dtype=torch.bool),
                     "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        texts = [t if h else None for t, h in zip(batch.pop("text"), batch["has_text"].tolist())]
        if self.hflip:
            flip = torch.rand(len(texts)) < 0.5
            batch["image"] = torch.where(flip.view(-1, 1, 1, 1), batch["image"].flip(-1), batch["image"])
        if self.kind == "chameleon":
            batch["text_image"] = self.t2i.encode_text(texts)
        else:
            vec = self.text_encoder.encode(texts)
            batch["text_vec"] = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32))
        return batch


class ClassifierModule(nn.Module):
    """Trainer module around a classifier: ``forward(batch) -> {"loss", "acc"}``.

    ``aux_weight`` > 0 adds, for Chameleon's joint mode, the mean classification loss of each
    input alone (``logits_image`` on rows with a photo, ``logits_text`` on rows with text), so
    the shared network learns to read each input by itself, not only their average.
    """

    def __init__(self, net: nn.Module, kind: str, multilabel: bool = False, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.net, self.kind, self.multilabel = net, kind, bool(multilabel)
        self.aux_weight = float(aux_weight)

    def run(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The network's outputs for a batch (modality dropout only in train mode)."""
        if self.kind == "chameleon":
            return self.net(batch["image"], batch["text_image"], batch["has_image"], batch["has_text"])
        return self.net(batch["image"], batch["text_vec"], batch["has_image"], batch["has_text"])

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = self.run(batch)
        y = batch["label"]
        loss = classification_loss(out["logits"], y, self.multilabel)
        if self.aux_weight > 0 and "logits_text" in out:
            aux = [classification_loss(out[f"logits_{k}"][m], y[m], self.multilabel)
                   for k, m in (("image", out["has_image"]), ("text", out["has_text"])) if bool(m.any())]
            if aux:
                loss = loss + self.aux_weight * torch.stack(aux).mean()
        if self.multilabel:
            acc = ((out["logits"] > 0) == (y > 0.5)).float().mean()
        else:
            acc = (out["logits"].argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}


# ----------------------------------------------------------------------------- building
def build_word_vectors(cfg: ChameleonRecipeConfig) -> Any:
    from modalink.text import WordVectors

    t = cfg.text_image
    if t.word_vectors:
        return WordVectors.load(Path(t.word_vectors).expanduser(), seed=t.seed)
    return WordVectors.hashed(t.dim, seed=t.seed)


def build_text_to_image(cfg: ChameleonRecipeConfig, vectors: Any = None) -> Any:
    """The text renderer: ``text`` mode canvas of the photo size (joint) or a band (fused)."""
    from modalink.text2image import TextToImage

    t = cfg.text_image
    size = cfg.data.image_size
    vectors = vectors if vectors is not None else build_word_vectors(cfg)
    if t.mode == "fused":
        band = t.band_height or size // 4
        return TextToImage(vectors, image_size=(band, size), superpixel=t.superpixel, max_words=t.max_words,
                           mode="text", output="uint8", layout=t.layout, word_gap=t.word_gap, repeat=t.repeat)
    return TextToImage(vectors, image_size=size, superpixel=t.superpixel, max_words=t.max_words,
                       mode="text", output="uint8", layout=t.layout, word_gap=t.word_gap, repeat=t.repeat)


def build_text_encoder(cfg: ChameleonRecipeConfig) -> Any:
    """The baseline's text features: mean word vectors (the vectors Chameleon paints) or hashed BoW."""
    from modalink.text_encoders import create_text_encoder

    b, t = cfg.baseline, cfg.text_image
    opts = dict(b.text_options)
    if b.text_encoder == "word-vectors":
        opts.setdefault("path", t.word_vectors)
        opts.setdefault("dim", t.dim)
        opts.setdefault("seed", t.seed)
    return create_text_encoder(b.text_encoder, **opts)


def build_model(kind: str, cfg: ChameleonRecipeConfig, num_classes: int, multilabel: bool,
                text_dim: int | None = None, pretrained: bool | None = None) -> ClassifierModule:
    """A method's network inside a :class:`ClassifierModule`. ``pretrained=False`` forces
    random weights (evaluate.py, which loads trained weights anyway)."""
    c = cfg.chameleon
    if kind == "chameleon":
        band = (cfg.text_image.band_height or cfg.data.image_size // 4) if cfg.text_image.mode == "fused" else None
        net = ChameleonClassifier(num_classes, c.backbone, c.pretrained if pretrained is None else pretrained,
                                  c.weights if pretrained is not False else None, mode=cfg.text_image.mode,
                                  band_height=band, drop_text=c.drop_text, drop_image=c.drop_image,
                                  dropout=c.dropout, **c.timm_kwargs)
    elif kind == "multi_branch":
        b = cfg.baseline
        if text_dim is None:
            raise ValueError("multi_branch needs text_dim")
        pre = (c.pretrained if b.pretrained is None else b.pretrained) if pretrained is None else pretrained
        weights = (b.weights or c.weights) if pre else None
        net = MultiBranchClassifier(num_classes, text_dim, b.backbone or c.backbone, pre, weights,
                                    embed_dim=b.embed_dim, hidden=tuple(b.hidden), fusion=b.fusion, norm=b.norm,
                                    dropout=b.dropout, drop_text=b.drop_text, drop_image=b.drop_image,
                                    **(b.timm_kwargs or c.timm_kwargs))
    else:
        raise ValueError(f"unknown method {kind!r}; use {', '.join(METHODS)}")
    return ClassifierModule(net, kind, multilabel, c.aux_weight if kind == "chameleon" else 0.0)


# ----------------------------------------------------------------------------- data
@dataclass
class RecipeData:
    """The three splits, class names and the task."""

    train: PhotoTextSet
    val: PhotoTextSet | None
    test: PhotoTextSet
    classes: list[str]
    task: str  # multiclass | multilabel | binary
    metrics: tuple[str, ...]
    description: str
    ceiling: Callable[..., float] | None = None  # synthetic data: best accuracy at (text, image) shares

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"


def synthetic_root(cfg: ChameleonRecipeConfig) -> Path:
    return Path(cfg.data.synthetic_dir).expanduser() if cfg.data.synthetic_dir else Path(cfg.output_dir) / "data"


def synthetic_kwargs(s: SyntheticConfig) -> dict[str, Any]:
    """Generator arguments of ``data.synthetic``: its fields, or a named preset (plus ``seed``)."""
    from modalink.data.synthetic_food101 import COMPLEMENTARY

    if s.preset is None:
        return {k: v for k, v in dataclasses.asdict(s).items() if k != "preset"}
    presets = {"complementary": COMPLEMENTARY}
    if s.preset not in presets:
        raise ValueError(f"data.synthetic.preset={s.preset!r}; use null or {', '.join(presets)}")
    return {**presets[s.preset], "seed": s.seed}


def ensure_synthetic(cfg: ChameleonRecipeConfig) -> Any:
    """Generate (once; the generator skips existing data) the synthetic Food-101 layout."""
    from modalink.data.synthetic_food101 import generate_synthetic_food101

    return generate_synthetic_food101(synthetic_root(cfg), **synthetic_kwargs(cfg.data.synthetic))


def condition_mask(n: int, split: str, condition: str, seed: int) -> Any:
    """The shared protocol: mask of ``condition`` on ``split`` with ``derive_seed(seed, split, condition)``."""
    from modalink.data.missing import derive_seed, mask_for_condition

    return mask_for_condition(n, condition, seed=derive_seed(seed, split, condition))


def _take(ds: PhotoTextSet, limit: int, seed: int) -> PhotoTextSet:
    if limit and len(ds) > limit:
        idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:limit])
        return ds.subset(idx)
    return ds


def load_data(cfg: ChameleonRecipeConfig, progress: bool = True) -> RecipeData:
    """Load (or generate) the dataset, make train/val/test :class:`PhotoTextSet` s and apply the
    training missing-modality condition (``missing.train``)."""
    from modalink.data.classification import load_dataset

    d = cfg.data
    if d.root:
        root, synthetic = Path(d.root).expanduser(), False
        if not root.is_dir():
            raise FileNotFoundError(f"data.root / --data-root {root} is not a folder")
        dataset = d.dataset
    else:
        made = ensure_synthetic(cfg)
        root, synthetic, dataset = made.root, True, "food101"
    transform = PhotoTransform(d.image_size, d.resize_ratio)
    opts = dict(d.loader_options)

    def load(split: str) -> Any:
        return load_dataset(dataset, root, split, transform=transform, **opts)

    train_ds = load(d.train_split)
    test_ds = load(d.test_split)
    val_ds = load(d.val_split) if d.val_split else None
    if train_ds.classes != test_ds.classes:
        raise ValueError(f"{root}: the {d.train_split} and {d.test_split} splits have different class lists")
    train = PhotoTextSet.from_dataset(train_ds, d.image_size).labelled()
    test = PhotoTextSet.from_dataset(test_ds, d.image_size).labelled()
    val = PhotoTextSet.from_dataset(val_ds, d.image_size).labelled() if val_ds is not None else None
    if val is None and d.val_fraction > 0:
        order = np.random.default_rng(d.split_seed).permutation(len(train))
        n_val = max(1, int(round(d.val_fraction * len(train))))
        val, train = train.subset(np.sort(order[:n_val])), train.subset(np.sort(order[n_val:]))
    train = _take(train, d.max_train, d.split_seed)
    test = _take(test, d.max_test, d.split_seed + 1)
    in_memory = synthetic if d.in_memory is None else d.in_memory
    if in_memory:
        for part in (train, val, test):
            if part is not None:
                part.load_into_memory(cfg.engine.num_workers, progress)
    if cfg.missing.train != "complete":
        m = condition_mask(len(train), "train", cfg.missing.train, cfg.missing.seed)
        train = train.with_mask(m.image, m.text)
    ceilings = None
    if synthetic:
        s = made.params
        setting = f"{s['evidence']} evidence, " if "evidence" in s else ""
        desc = (f"synthetic Food-101 layout ({setting}{s['n_classes']} classes = "
                f"{s['n_classes'] // s['n_text_groups']} visual x {s['n_text_groups']} text groups, "
                f"{s['n_train_per_class']}+{s['n_test_per_class']} per class, {s['words_per_group']} words per "
                f"text group, title_visual_hint {s.get('title_visual_hint', 0):g}, image_text_cue "
                f"{s.get('image_text_cue', 0):g}, image_difficulty {s.get('image_difficulty', 0):g}, seed "
                f"{s['seed']}; the photo alone can reach {100 * made.image_only_ceiling:.0f}%)")
        ceilings = made.ceiling
    else:
        desc = f"{dataset} at {root}"
    return RecipeData(train, val, test, list(train_ds.classes), train_ds.task, tuple(train_ds.metrics), desc,
                      ceilings)


# ----------------------------------------------------------------------------- evaluation
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


def predict_logits(module: ClassifierModule, dataset: PhotoTextSet, collate: BatchBuilder,
                   batch_size: int = 256, trainer: Any = None, progress: bool = False) -> np.ndarray:
    """Logits for every sample of ``dataset`` (eval mode); through ``trainer.predict`` (gathered
    across processes) when given, else on the module's device."""
    def fn(mod: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"logits": mod.run(batch)["logits"]}

    if trainer is not None:
        return trainer.predict(dataset, fn, batch_size=batch_size, collate_fn=collate, desc="eval")["logits"]
    device = next(module.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    was = module.training
    module.eval()
    parts = []
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                parts.append(fn(module, batch)["logits"].float().cpu())
    finally:
        module.train(was)
    return torch.cat(parts).numpy()


def evaluate_methods(models: Mapping[str, tuple[ClassifierModule, BatchBuilder]], data: RecipeData,
                     cfg: ChameleonRecipeConfig, trainers: Mapping[str, Any] | None = None,
                     mask_dir: str | os.PathLike | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Every metric of every method on the test split under each ``missing.eval`` condition.

    Masks come from :func:`condition_mask` (saved to ``mask_dir`` when given), so every method
    sees exactly the same missing inputs.
    """
    test = data.test
    results: dict[str, dict[str, dict[str, float]]] = {}
    for cond in cfg.missing.eval:
        m = condition_mask(len(test), "test", cond, cfg.missing.seed)
        if mask_dir is not None:
            m.save(Path(mask_dir) / f"test_{cond.replace('=', '').replace('%', 'pct').replace(',', '_')}.json")
        view = test.with_mask(m.image, m.text)
        for name, (module, collate) in models.items():
            trainer = trainers.get(name) if trainers else None
            logits = predict_logits(module, view, collate, batch_size=batch_size, trainer=trainer)
            results.setdefault(name, {})[cond] = {k: round(v, 2) for k, v in score(test.labels, logits,
                                                                                  data.task).items()}
    out = {"dataset": data.description, "task": data.task, "metrics": list(data.metrics),
           "num_classes": data.num_classes, "n_test": len(test), "n_train": len(data.train),
           "train_condition": cfg.missing.train, "mask_seed": cfg.missing.seed,
           "conditions": list(cfg.missing.eval), "results": results}
    if data.ceiling is not None:
        out["ceiling"] = {c: round(100 * data.ceiling(*_shares(c)), 2) for c in cfg.missing.eval}
    return out


def _shares(condition: str) -> tuple[float, float]:
    """(share of samples with text, share with a photo) of a condition label."""
    from modalink.data.missing import parse_condition

    _, rates = parse_condition(condition)  # missing rates
    return 1.0 - rates.get("text", 0.0), 1.0 - rates.get("image", 0.0)


def format_table(res: Mapping[str, Any]) -> str:
    """Markdown tables (one per metric): rows = methods, columns = conditions, plus the drop
    from complete data to the worst condition."""
    conds = list(res["conditions"])
    methods = list(res["results"])
    present = [k for k in res["metrics"] if all(k in res["results"][m][c] for m in methods for c in conds)]
    if not present:
        present = ["accuracy"]
    lines = [f"Test results on {res['dataset']} ({res['n_test']} test samples; training data: "
             f"{res['train_condition']}). Columns: share of test samples that keep each modality.", ""]
    for metric in present:
        has_drop = "complete" in conds and len(conds) > 1
        head = "| method | " + " | ".join(conds) + (" | drop (complete → worst) |" if has_drop else " |")
        lines += [f"**{METRIC_TITLES.get(metric, metric)} (%)**", "", head,
                  "|---|" + "---:|" * (len(conds) + int(has_drop))]
        for m in methods:
            vals = [res["results"][m][c][metric] for c in conds]
            row = f"| {METHOD_TITLES.get(m, m)} | " + " | ".join(f"{v:.1f}" for v in vals)
            if has_drop:
                full = res["results"][m]["complete"][metric]
                worst = min(v for c, v in zip(conds, vals) if c != "complete")
                row += f" | {full - worst:.1f}"
            lines.append(row + " |")
        if metric == "accuracy" and res.get("ceiling"):
            lines.append("| ceiling (best possible on this data) | " + " | ".join(
                f"{res['ceiling'][c]:.1f}" for c in conds) + (" | |" if has_drop else " |"))
        lines.append("")
    if "wall_time_s" in res:
        lines.append(f"Wall time of the command: {res['wall_time_s']:.0f} s")
    return "\n".join(lines).rstrip() + "\n"


def write_results(res: Mapping[str, Any], out_dir: str | os.PathLike, stem: str = "results") -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (atomic writes)."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(res, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / f"{stem}.md", format_table(res))


def load_trained(kind: str, cfg: ChameleonRecipeConfig, data: RecipeData, run_dir: str | os.PathLike,
                 text_dim: int | None) -> ClassifierModule:
    """Rebuild a method's module (random init) and load ``run_dir/best_model.pt``."""
    path = Path(run_dir) / "best_model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no trained {kind} model: {path} does not exist (run train.py first)")
    module = build_model(kind, cfg, data.num_classes, data.multilabel, text_dim, pretrained=False)
    ckpt = load_torch_weights(path, "trained model")
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def method_collates(kind: str, cfg: ChameleonRecipeConfig, cache: dict[str, Any]) -> tuple[BatchBuilder, BatchBuilder, int | None]:
    """(train collate, eval collate, text_dim) of a method; ``cache`` shares word vectors."""
    if kind == "chameleon":
        if "t2i" not in cache:
            cache["t2i"] = build_text_to_image(cfg, cache.get("vectors"))
        t2i = cache["t2i"]
        return (BatchBuilder(kind, text_to_image=t2i, hflip=cfg.data.hflip),
                BatchBuilder(kind, text_to_image=t2i), None)
    if "text_encoder" not in cache:
        cache["text_encoder"] = build_text_encoder(cfg)
    enc = cache["text_encoder"]
    return (BatchBuilder(kind, text_encoder=enc, hflip=cfg.data.hflip), BatchBuilder(kind, text_encoder=enc),
            int(enc.dim))


def resolve_monitor(engine: EngineConfig, data: RecipeData) -> EngineConfig:
    """``engine.monitor: auto`` → the dataset's main metric on complete validation data (max)."""
    if engine.monitor != "auto":
        return dataclasses.replace(engine)
    return dataclasses.replace(engine, monitor=data.metrics[0] if data.metrics else "accuracy", monitor_mode="max")


def make_evaluate_fn(data: RecipeData, collate: BatchBuilder) -> Callable[[Any], dict[str, float]] | None:
    """Validation metrics on complete data and with all texts missing (for the log)."""
    val = data.val
    if val is None or len(val) == 0:
        return None

    def evaluate(trainer: Any) -> dict[str, float]:
        logits = predict_logits(trainer.model, val, collate, batch_size=trainer.cfg.batch_size, trainer=trainer)
        res = score(val.labels, logits, data.task)
        no_text = val.with_mask(has_text=np.zeros(len(val), dtype=bool))
        logits = predict_logits(trainer.model, no_text, collate, batch_size=trainer.cfg.batch_size, trainer=trainer)
        res.update({f"{k}_no_text": v for k, v in score(val.labels, logits, data.task).items()})
        return res

    return evaluate
