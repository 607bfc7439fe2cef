"""Image features over image files for methods on cached embeddings (SRMM, late fusion, ...).

:class:`ImageFeatures` wraps ANY image encoder of the one encoder registry
(:func:`modalink.encoders.create_encoder`): ``pixel-stats`` (hand-made features, no weights —
the default for the embedded synthetic data), ``timm/<arch>`` (weights from ``weights=FILE``,
the local caches or the hub; random seeded weights with ``pretrained=False``), or a face encoder
such as ``facenet_vggface2``. Images are decoded and preprocessed by DataLoader workers
following the encoder's contract, then embedded in batches. It exposes ``name``, ``dim``,
``config()`` (the embedding-cache key) and ``encode_paths(paths)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from modalink.errors import InputError, UnknownNameError, UserError

__all__ = ["ImageFeatures", "ImageReadError", "check_image_encoder_name", "create_image_features", "open_rgb"]


class ImageReadError(UserError, ValueError):
    """An image file that cannot be decoded; the message names it."""


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image file to RGB; an unreadable file raises :class:`ImageReadError` naming it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ImageReadError(f"cannot read image {path}: {e}") from None


class _PathImages(torch.utils.data.Dataset):
    """Image files → the encoder's preprocessed tensors (``None`` where the encoder refuses one)."""

    def __init__(self, paths: Sequence[str | os.PathLike], encoder: Any) -> None:
        self.paths, self.encoder = list(paths), encoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        from modalink.encoders import PreprocessError

        try:
            return self.encoder.preprocess(open_rgb(self.paths[i]))
        except PreprocessError:
            return None


def _collate(items: list[torch.Tensor | None]) -> tuple[torch.Tensor | None, list[int]]:
    kept = [k for k, x in enumerate(items) if x is not None]
    return (torch.stack([items[k] for k in kept]) if kept else None), kept  # type: ignore[misc]


class ImageFeatures:
    """A registered image encoder over image files, batched on ``device`` (see the module docstring).

    ``pretrained=False`` builds random weights under ``seed`` (reproducible); an image the encoder
    refuses (e.g. no face under a ``no_face="skip"`` policy) gives a zero row."""

    def __init__(self, name: str = "pixel-stats", pretrained: bool = True, weights: str | None = None,
                 device: str | None = None, num_workers: int = 0, offline: bool | None = None, seed: int = 0,
                 weights_option: str | None = None, **encoder_kwargs: Any) -> None:
        from modalink.encoders import create_encoder

        self.name = name
        self.pretrained = bool(pretrained or weights)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.num_workers = num_workers
        self.encoder_kwargs = dict(encoder_kwargs)
        self.seed = int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # random weights (pretrained=False) are reproducible
            self.encoder = create_encoder(name, pretrained=self.pretrained, weights=weights, offline=offline,
                                          weights_option=weights_option, **encoder_kwargs).to(self.device)
        if self.encoder.contract.input_kind != "image":
            raise InputError(f"image encoder {name!r} takes {self.encoder.contract.input_kind}, not images")
        self.dim = self.encoder.output_dim
        self._weights_id = _weights_id(getattr(self.encoder, "weights_path", None)) if self.pretrained else None

    def config(self) -> dict[str, Any]:
        """Everything that decides the features (the embedding-cache key)."""
        options = getattr(self.encoder, "options", None)
        return {"name": self.name, "pretrained": self.pretrained, "weights": self._weights_id,
                "encoder_kwargs": options() if callable(options) else self.encoder_kwargs, "dim": self.dim,
                "contract": self.encoder.contract.to_dict(),
                "seed": None if self.pretrained or not list(self.encoder.parameters()) else self.seed}

    def encode_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        """(len(paths), dim) float32 features of image files, in order."""
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        loader = torch.utils.data.DataLoader(_PathImages(paths, self.encoder), batch_size=batch_size, shuffle=False,
                                             num_workers=self.num_workers, collate_fn=_collate)
        start = 0
        for x, kept in loader:
            if x is not None:
                out[[start + k for k in kept]] = self.encoder.embed(x.to(self.device)).float().cpu().numpy()
            start += batch_size
        return out


def _weights_id(path: str | None) -> Any:
    if not path or path.startswith("timm:"):
        return path
    p = Path(path)
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def check_image_encoder_name(name: str) -> None:
    """Raise :class:`~modalink.errors.UnknownNameError` listing the known names unless ``name`` is a
    registered encoder or ``timm/<architecture>`` of an architecture timm knows."""
    from modalink.encoders import list_encoders
    from modalink.encoders.image import check_timm_architecture

    if name.startswith("timm/"):
        check_timm_architecture(name[len("timm/"):])
        return
    known = list_encoders()
    if name not in known:
        raise UnknownNameError(f"unknown image encoder {name!r}; use one of {', '.join(k for k in known if k != 'timm')} "
                               f"or 'timm/<architecture>' (e.g. timm/resnet50, timm/vit_base_patch16_clip_224.openai)")


def create_image_features(name: str, **kwargs: Any) -> ImageFeatures:
    """:class:`ImageFeatures` of a registered image encoder (``pixel-stats``, ``timm/<arch>``,
    ``facenet_vggface2``, ...); kwargs: pretrained, weights, device, num_workers, seed, and the
    encoder's own options (e.g. ``size`` for pixel-stats)."""
    check_image_encoder_name(name)
    return ImageFeatures(name, **kwargs)
