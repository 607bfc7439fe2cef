"""SRMM recipe internals: config, modality-switching schedules, the training wrapper, the
embedding dataset and evaluation at several text-availability rates.

The scripts (``prepare.py``, ``train.py``, ``evaluate.py``) only wire these together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.engine import EngineConfig
from modalink.models import create_model
from modalink.models.single_branch import parse_subsets

MODALITIES = ("image", "text")


# ----------------------------------------------------------------------------- config
@dataclass
class SyntheticConfig:
    """Arguments of :func:`modalink.data.synthetic_food101.generate_synthetic_food101` (the data
    used without --data-root): class = (visual group, text group). Without ``options`` the image
    shows only the visual group and the title only the text group; ``options`` such as
    ``title_visual_hint``, ``image_text_cue`` and ``image_difficulty`` make each modality alone
    (nearly) sufficient, as in real Food-101 (see ``hparams/default.yaml``)."""

    n_classes: int = 10
    n_train_per_class: int = 100
    n_test_per_class: int = 30
    image_size: int = 64
    seed: int = 0
    n_text_groups: int = 2
    words_per_group: int = 6
    options: dict[str, Any] = field(default_factory=dict)  # further generator arguments, passed as is


@dataclass
class DataConfig:
    root: str | None = None  # Food-101 layout; None: generate the synthetic default
    cache_dir: str | None = None  # default: <output_dir>/cache
    val_fraction: float | None = None  # val share of the train file; None: load_food101's (6846/67988)
    val_seed: int = 0  # load_food101's split seed
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ImageEncoderConfig:
    name: str = "pixel-stats"  # pixel-stats | timm/<arch>
    pretrained: bool = True  # timm only; false: random weights (seeded)
    weights: str | None = None  # local weights file for timm
    seed: int = 0
    batch_size: int = 64
    num_workers: int = 0
    device: str | None = None


@dataclass
class TextEncoderConfig:
    name: str = "hashed-bow"  # hashed-bow | word-vectors | sentence-transformers/<model> | st:<path> | auto
    options: dict[str, Any] = field(default_factory=dict)  # constructor arguments, e.g. {dim: 1024}
    batch_size: int = 256


@dataclass
class PrepareConfig:
    shard_size: int = 1024
    force: bool = False  # rebuild caches even when valid
    progress: bool = True


@dataclass
class ModelConfig:
    embed_dim: int = 128
    stem_dim: int = 256
    trunk_hidden: list[int] = field(default_factory=lambda: [256])
    norm: str = "layer"
    dropout: float = 0.2
    switching: str = "per_sample"  # per_sample | per_batch | alternate | none
    modality_subsets: dict[str, float] = field(
        default_factory=lambda: {"image": 1.0, "text": 1.0, "image+text": 1.0})
    aux_weight: float = 0.0  # extra CE on each kept modality's own logits


@dataclass
class BaselineConfig:
    enabled: bool = True
    embed_dim: int = 128
    hidden: list[int] = field(default_factory=lambda: [256])
    norm: str = "layer"
    dropout: float = 0.2
    fusion: str = "mlp"  # mlp (concat -> MLP -> classifier, the standard head) | concat (linear) | mean


@dataclass
class MissingConfig:
    train_text: float = 1.0  # fraction of training samples that keep their text
    eval_text: list[float] = field(default_factory=lambda: [1.0, 0.7, 0.3, 0.0])
    seed: int = 0  # mask seed (same protocol as the Chameleon recipe)
    eval_splits: list[str] = field(default_factory=lambda: ["train", "test"])


@dataclass
class SRMMConfig:
    """The whole recipe (``hparams/*.yaml``, ``key=value`` overrides)."""

    output_dir: str = "runs/srmm"
    data: DataConfig = field(default_factory=DataConfig)
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    missing: MissingConfig = field(default_factory=MissingConfig)
    engine: EngineConfig = field(default_factory=lambda: EngineConfig(
        epochs=30, batch_size=64, lr=1e-3, weight_decay=1e-4, scheduler="cosine", monitor="acc",
        monitor_mode="max", cpu=False))


def _absolute(path: str | os.PathLike | None, base: Path) -> str | None:
    if path is None or str(path) == "":
        return None if path is None else str(path)
    p = Path(path).expanduser()
    return os.path.normpath(p if p.is_absolute() else base / p)


def absolute_paths(cfg: SRMMConfig, base: str | os.PathLike | None = None) -> SRMMConfig:
    """Make every file setting of ``cfg`` absolute, in place (relative ones are taken from ``base``,
    default the current folder): ``output_dir``, ``data.root``, ``data.cache_dir``,
    ``image_encoder.weights``, ``text_encoder.options.path`` and a local ``st:<folder>`` text
    encoder. The run's ``config.yaml`` then names the same files from any working directory, so
    ``evaluate.py RUN`` works wherever it is started."""
    b = Path(os.path.abspath(base if base is not None else os.getcwd()))
    cfg.output_dir = _absolute(cfg.output_dir, b) or cfg.output_dir
    cfg.data.root = _absolute(cfg.data.root, b)
    cfg.data.cache_dir = _absolute(cfg.data.cache_dir, b)
    cfg.image_encoder.weights = _absolute(cfg.image_encoder.weights, b)
    opts = cfg.text_encoder.options
    if isinstance(opts, dict) and isinstance(opts.get("path"), str) and opts["path"]:
        opts["path"] = _absolute(opts["path"], b)
    name = cfg.text_encoder.name
    if name.startswith("st:") and (b / Path(name[3:]).expanduser()).exists():
        cfg.text_encoder.name = "st:" + str(_absolute(name[3:], b))
    return cfg


# ----------------------------------------------------------------------------- switching
class ModalitySwitch:
    """Training-time modality switching: which available modalities each sample keeps.

    Modes: ``per_sample`` (a subset drawn per sample from ``subsets`` probabilities — SRMM's
    random switching), ``per_batch`` (one subset drawn for the whole batch), ``alternate``
    (subsets in turn, one per batch: image, text, image+text, image, ...) and ``none`` (keep
    everything). Rows whose subset keeps nothing available fall back to what is available.
    """

    MODES = ("per_sample", "per_batch", "alternate", "none")

    def __init__(self, subsets: Mapping[str, float], modalities: Sequence[str] = MODALITIES,
                 mode: str = "per_sample") -> None:
        if mode not in self.MODES:
            raise ValueError(f"model.switching={mode!r}; use one of {', '.join(self.MODES)}")
        self.mode = mode
        self.modalities = tuple(modalities)
        self.names = list(subsets)
        self.subsets, self.probs = parse_subsets(subsets, self.modalities)

    def __call__(self, available: torch.Tensor, step: int = 0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``available`` (B×M bool) → kept (B×M bool), a subset of ``available``."""
        if self.mode == "none":
            return available
        b = available.shape[0]
        if self.mode == "per_sample":
            k = torch.multinomial(self.probs, b, replacement=True, generator=generator)
        elif self.mode == "per_batch":
            k = torch.multinomial(self.probs, 1, generator=generator).expand(b)
        else:
            active = (self.probs > 0).nonzero().flatten()
            k = active[step % len(active)].expand(b)
        keep = self.subsets[k].to(available.device) & available
        empty = ~keep.any(dim=1)
        return torch.where(empty.unsqueeze(1), available, keep)


# ----------------------------------------------------------------------------- wrapper
class MissingModalityClassifier(nn.Module):
    """Trainer module: ``forward(batch) -> {"loss", "acc"}`` around SingleBranch or LateFusion.

    ``batch`` holds ``image``/``text`` embeddings, ``has_image``/``has_text`` masks and
    ``label``. During training ``switch`` (if any) decides which available modalities each
    sample keeps; the step counter is a buffer, so schedules resume with checkpoints.
    """

    def __init__(self, net: nn.Module, switch: ModalitySwitch | None = None, aux_weight: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.switch = switch
        self.aux_weight = float(aux_weight)
        self.register_buffer("switch_step", torch.zeros((), dtype=torch.long))

    def available(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([batch["has_image"].bool(), batch["has_text"].bool()], dim=1)

    def run(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The network's outputs for a batch (switching applied in train mode)."""
        avail = self.available(batch)
        keep = avail
        if self.training and self.switch is not None:
            keep = self.switch(avail, int(self.switch_step))
            self.switch_step += 1
        present = {m: keep[:, j] for j, m in enumerate(MODALITIES)}
        return self.net({m: batch[m] for m in MODALITIES}, present)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.run(batch)
        y = batch["label"].long()
        loss = F.cross_entropy(out["logits"], y)
        if self.aux_weight > 0:
            mask = out["mask"]
            aux = []
            for j, m in enumerate(MODALITIES):
                key = f"logits_{m}"
                if key in out and bool(mask[:, j].any()):
                    aux.append(F.cross_entropy(out[key][mask[:, j]], y[mask[:, j]]))
            if aux:
                loss = loss + self.aux_weight * torch.stack(aux).mean()
        acc = (out["logits"].argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}


def build_srmm(cfg: SRMMConfig, dims: Mapping[str, int], num_classes: int) -> MissingModalityClassifier:
    """The single-branch SRMM network with the configured switching schedule."""
    m = cfg.model
    net = create_model("srmm", input_dims=dict(dims), embed_dim=m.embed_dim, stem_dim=m.stem_dim,
                       trunk_hidden=tuple(m.trunk_hidden), norm=m.norm, dropout=m.dropout,
                       num_classes=num_classes, modality_subsets=None)
    switch = None if m.switching == "none" else ModalitySwitch(m.modality_subsets, MODALITIES, m.switching)
    return MissingModalityClassifier(net, switch, m.aux_weight)


def build_late_fusion(cfg: SRMMConfig, dims: Mapping[str, int], num_classes: int) -> MissingModalityClassifier:
    """The two-branch late-fusion baseline (no switching: a missing text is a zero vector)."""
    b = cfg.baseline
    net = create_model("late_fusion", input_dims=dict(dims), embed_dim=b.embed_dim, hidden=tuple(b.hidden),
                       norm=b.norm, dropout=b.dropout, num_classes=num_classes, fusion=b.fusion)
    return MissingModalityClassifier(net, None, 0.0)


# ----------------------------------------------------------------------------- data
class EmbeddingSet(torch.utils.data.Dataset):
    """Cached image/text embeddings with labels and availability masks.

    Items are dicts; ``__getitems__`` returns a whole collated batch at once (use
    :func:`collate_batch` as the DataLoader's ``collate_fn``).
    """

    def __init__(self, image: np.ndarray, text: np.ndarray, labels: np.ndarray,
                 has_image: np.ndarray | None = None, has_text: np.ndarray | None = None) -> None:
        n = len(labels)
        if image.shape[0] != n or text.shape[0] != n:
            raise ValueError(f"embedding counts differ: image {image.shape[0]}, text {text.shape[0]}, labels {n}")
        self.image = torch.as_tensor(np.asarray(image, dtype=np.float32))
        self.text = torch.as_tensor(np.asarray(text, dtype=np.float32))
        self.label = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.has_image = torch.ones(n, dtype=torch.bool) if has_image is None else torch.as_tensor(
            np.asarray(has_image, dtype=bool))
        self.has_text = torch.ones(n, dtype=torch.bool) if has_text is None else torch.as_tensor(
            np.asarray(has_text, dtype=bool))
        self.index = torch.arange(n)

    def __len__(self) -> int:
        return len(self.label)

    def _take(self, idx: Any) -> dict[str, torch.Tensor]:
        return {"image": self.image[idx], "text": self.text[idx], "label": self.label[idx],
                "has_image": self.has_image[idx], "has_text": self.has_text[idx], "index": self.index[idx]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._take(i)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        return self._take(torch.as_tensor(list(indices), dtype=torch.long))

    def subset(self, indices: np.ndarray) -> "EmbeddingSet":
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return EmbeddingSet(self.image[idx].numpy(), self.text[idx].numpy(), self.label[idx].numpy(),
                            self.has_image[idx].numpy(), self.has_text[idx].numpy())

    def with_text_mask(self, has_text: np.ndarray) -> "EmbeddingSet":
        """A view whose text availability is ``has_text & original`` (the same tensors otherwise)."""
        has_text = np.asarray(has_text, dtype=bool)
        if has_text.shape != (len(self),):
            raise ValueError(f"text mask has shape {has_text.shape}, expected ({len(self)},)")
        out = EmbeddingSet.__new__(EmbeddingSet)
        out.__dict__.update(self.__dict__)
        out.has_text = self.has_text & torch.as_tensor(has_text)
        return out


def collate_batch(items: Any) -> dict[str, torch.Tensor]:
    """Collate for :class:`EmbeddingSet`: a pre-collated dict passes through."""
    if isinstance(items, Mapping):
        return dict(items)
    return torch.utils.data.default_collate(list(items))


# ----------------------------------------------------------------------------- evaluation
def predict_logits(module: MissingModalityClassifier, dataset: EmbeddingSet, batch_size: int = 1024,
                   trainer: Any | None = None) -> np.ndarray:
    """Logits for every sample (eval mode, no switching); through ``trainer.predict`` when given
    (gathered across processes), else locally."""
    def fn(mod: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": mod.run(batch)["logits"]}

    if trainer is not None:
        return trainer.predict(dataset, fn, batch_size=batch_size, collate_fn=collate_batch, desc="eval")["logits"]
    was = module.training
    module.eval()
    parts = []
    try:
        with torch.no_grad():
            device = next(module.parameters()).device
            for s in range(0, len(dataset), batch_size):
                batch = dataset.__getitems__(range(s, min(s + batch_size, len(dataset))))
                parts.append(fn(module, {k: v.to(device) for k, v in batch.items()})["logits"].float().cpu())
    finally:
        module.train(was)
    return torch.cat(parts).numpy()


def rate_label(rate: float) -> str:
    """1.0 → "complete", 0.3 → "30% text", 0.0 → "0% text"."""
    return "complete" if rate >= 1.0 else f"{round(rate * 100):g}% text"
