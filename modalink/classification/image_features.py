"""Image feature extractors for methods on cached embeddings: a timm backbone, or pixel statistics.

Both expose ``name``, ``dim``, ``config()`` (the cache key) and ``encode_paths(paths)``.

* ``timm/<arch>`` — the one image-encoder registry, :func:`modalink.encoders.create_encoder`: weights from ``weights=FILE``,
  the local caches or the hub (``pretrained=True``), random weights with ``pretrained=False``
  (tests). Images are decoded and preprocessed by DataLoader workers, embedded in batches.
* ``pixel-stats`` — no network, no weights: a 8×8 colour thumbnail, per-channel and
  saturation-weighted hue histograms and a 4×4-cell gradient-orientation histogram
  (HOG-like), 356 values. It is the default for the embedded synthetic data, whose class
  evidence lives in colour, layout and shape: random-weight CNN features carry the same
  information only weakly, and pretrained weights cannot be downloaded offline.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["PixelStatsEncoder", "TimmImageFeatures", "create_image_features", "open_rgb"]


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image file to RGB; an unreadable file raises ``ValueError`` naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


class PixelStatsEncoder:
    """Hand-made, download-free image features (see the module docstring)."""

    name = "pixel-stats"

    def __init__(self, size: int = 64, thumb: int = 8, bins: int = 8, hue_bins: int = 12,
                 cells: int = 4, orientations: int = 8) -> None:
        if size % thumb or size % cells:
            raise ValueError(f"pixel-stats: size={size} must be a multiple of thumb={thumb} and cells={cells}")
        self.size, self.thumb, self.bins, self.hue_bins = size, thumb, bins, hue_bins
        self.cells, self.orientations = cells, orientations
        self.dim = 3 * thumb * thumb + 3 * bins + hue_bins + cells * cells * orientations

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "thumb": self.thumb, "bins": self.bins,
                "hue_bins": self.hue_bins, "cells": self.cells, "orientations": self.orientations,
                "dim": self.dim, "version": 1}

    def features(self, img: Image.Image) -> np.ndarray:
        """One RGB image → (dim,) float32."""
        s = self.size
        x = np.asarray(img.convert("RGB").resize((s, s), Image.BILINEAR), dtype=np.float32) / 255.0
        k = s // self.thumb
        thumb = x.reshape(self.thumb, k, self.thumb, k, 3).mean(axis=(1, 3)).ravel() - 0.5
        hist = np.concatenate([np.histogram(x[..., c], bins=self.bins, range=(0.0, 1.0))[0]
                               for c in range(3)]).astype(np.float32)
        hist = np.sqrt(hist / hist.sum() * 3.0)
        mx, mn = x.max(axis=2), x.min(axis=2)
        sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
        hue = _hue(x, mx, mn)
        hh = np.histogram(hue, bins=self.hue_bins, range=(0.0, 1.0), weights=sat)[0].astype(np.float32)
        hh = np.sqrt(hh / max(float(hh.sum()), 1e-6))
        gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        gy, gx = np.gradient(gray)
        mag = np.hypot(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi) / np.pi  # unsigned orientation in [0, 1)
        o = np.minimum((ang * self.orientations).astype(np.int64), self.orientations - 1)
        c = s // self.cells
        cell = (np.arange(s) // c)
        idx = (cell[:, None] * self.cells + cell[None, :]) * self.orientations + o
        hog = np.bincount(idx.ravel(), weights=mag.ravel(),
                          minlength=self.cells * self.cells * self.orientations).reshape(-1, self.orientations)
        hog = np.sqrt(hog / np.maximum(hog.sum(axis=1, keepdims=True), 1e-6)).ravel()
        return np.concatenate([thumb, hist, hh, hog]).astype(np.float32)

    def encode_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for i, p in enumerate(paths):
            out[i] = self.features(open_rgb(p))
        return out


def _hue(x: np.ndarray, mx: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 1) of an (H, W, 3) RGB array in [0, 1]."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    d = np.maximum(mx - mn, 1e-6)
    h = np.where(mx == r, (g - b) / d, np.where(mx == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    return np.mod(h / 6.0, 1.0)


class _PathImages(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str | os.PathLike], transform: Any) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(open_rgb(self.paths[i]))


class TimmImageFeatures:
    """A timm backbone (``modalink.encoders``) over image files, batched on ``device``."""

    def __init__(self, model: str = "resnet50", pretrained: bool = True, weights: str | None = None,
                 device: str | None = None, num_workers: int = 0, offline: bool | None = None,
                 seed: int = 0, **timm_kwargs: Any) -> None:
        from modalink.encoders import create_encoder

        self.model_name = model
        self.pretrained = bool(pretrained or weights)
        self.weights = weights
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.num_workers = num_workers
        self.timm_kwargs = dict(timm_kwargs)
        self.seed = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # random weights (pretrained=False) are reproducible
            self.encoder = create_encoder(f"timm/{model}", pretrained=self.pretrained, weights=weights,
                                          offline=offline, **timm_kwargs).to(self.device)
        self.name = f"timm/{model}"
        self.dim = self.encoder.output_dim
        self._weights_id = _weights_id(getattr(self.encoder, "weights_path", None)) if self.pretrained else None

    def config(self) -> dict[str, Any]:
        c = self.encoder.contract
        return {"name": self.name, "pretrained": self.pretrained, "weights": self._weights_id,
                "timm_kwargs": self.timm_kwargs, "dim": self.dim, "image_size": list(c.image_size or ()),
                "mean": list(c.mean or ()), "std": list(c.std or ()), "crop_pct": c.crop_pct,
                "interpolation": c.interpolation,
                "seed": None if self.pretrained else self.seed}

    def encode_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        loader = torch.utils.data.DataLoader(_PathImages(paths, self.encoder.preprocess), batch_size=batch_size,
                                             shuffle=False, num_workers=self.num_workers)
        parts = [self.encoder.embed(x.to(self.device)).float().cpu().numpy() for x in loader]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.dim), np.float32)


def _weights_id(path: str | None) -> Any:
    if not path or path.startswith("timm:"):
        return path
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def create_image_features(name: str, **kwargs: Any) -> PixelStatsEncoder | TimmImageFeatures:
    """``"pixel-stats"`` or ``"timm/<arch>"`` (kwargs: pretrained, weights, device, num_workers...)."""
    if name == "pixel-stats":
        allowed = {"size", "thumb", "bins", "hue_bins", "cells", "orientations"}
        return PixelStatsEncoder(**{k: v for k, v in kwargs.items() if k in allowed})
    if name.startswith("timm/"):
        return TimmImageFeatures(model=name[len("timm/"):], **kwargs)
    raise KeyError(f"unknown image encoder {name!r}; use 'pixel-stats' or 'timm/<architecture>' "
                   f"(e.g. timm/resnet50, timm/vit_base_patch16_clip_224.openai)")
