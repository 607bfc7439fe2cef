"""``pixel-stats``: hand-made, download-free image features, registered like every other encoder.

An 8×8 colour thumbnail, per-channel and saturation-weighted hue histograms and a 4×4-cell
gradient-orientation histogram (HOG-like), 356 values with the defaults. It needs no weights
and no network, so it is the default image encoder of the embedded synthetic Food-101 data,
whose class evidence lives in colour, layout and shape (random-weight CNN features carry it
only weakly, and pretrained weights cannot be downloaded offline).

The features are computed in :meth:`PixelStats.preprocess` (per image, in DataLoader workers);
the "network" is the identity, so batches embed like any other :class:`Encoder`'s.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from modalink.encoders.base import Encoder, EncoderContract, register_encoder
from modalink.errors import InputError

__all__ = ["PixelStats", "pixel_stats"]


class PixelStats(Encoder):
    """Pixel statistics of one RGB image (see the module docstring)."""

    def __init__(self, size: int = 64, thumb: int = 8, bins: int = 8, hue_bins: int = 12, cells: int = 4,
                 orientations: int = 8) -> None:
        super().__init__()
        if size % thumb or size % cells:
            raise InputError(f"pixel-stats: size={size} must be a multiple of thumb={thumb} and cells={cells}")
        self.size, self.thumb, self.bins, self.hue_bins = size, thumb, bins, hue_bins
        self.cells, self.orientations = cells, orientations
        dim = 3 * thumb * thumb + 3 * bins + hue_bins + cells * cells * orientations
        self.contract = EncoderContract(
            name="pixel-stats", modality="image", input_kind="image", output_dim=dim, l2_normalized=False,
            weight_source="none (hand-made features)", image_size=(size, size), mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0), licence="Apache-2.0 (modalink)",
            notes=f"thumb={thumb} bins={bins} hue_bins={hue_bins} cells={cells} orientations={orientations}")

    def options(self) -> dict[str, int]:
        """The constructor arguments (what decides the features)."""
        return {"size": self.size, "thumb": self.thumb, "bins": self.bins, "hue_bins": self.hue_bins,
                "cells": self.cells, "orientations": self.orientations}

    def features(self, img: Image.Image) -> np.ndarray:
        """One RGB image → (output_dim,) float32."""
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

    def preprocess(self, raw: Image.Image) -> torch.Tensor:
        return torch.from_numpy(self.features(raw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def _hue(x: np.ndarray, mx: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 1) of an (H, W, 3) RGB array in [0, 1]."""
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    d = np.maximum(mx - mn, 1e-6)
    h = np.where(mx == r, (g - b) / d, np.where(mx == g, 2.0 + (b - r) / d, 4.0 + (r - g) / d))
    return np.mod(h / 6.0, 1.0)


@register_encoder("pixel-stats")
def pixel_stats(pretrained: bool = False, weights: str | os.PathLike | None = None, offline: bool | None = None,
                weights_option: str | None = None, **kwargs: Any) -> PixelStats:
    """The ``pixel-stats`` encoder; it has no weights (``weights=`` is an error; ``pretrained``,
    ``offline`` and ``weights_option`` are accepted like every encoder's and have no effect)."""
    if weights is not None:
        raise InputError(f"pixel-stats has no weights to load (got weights={weights})")
    return PixelStats(**kwargs)
