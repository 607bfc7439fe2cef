"""Image features over image files for methods on cached embeddings (SRMM, late fusion, ...).

:class:`ImageFeatures` wraps ANY image encoder of the one encoder registry
(:func:`modalink.encoders.create_encoder`): ``pixel-stats`` (hand-made features, no weights —
the default for the embedded synthetic data), ``timm/<arch>`` (weights from ``weights=FILE``,
the local caches or the hub; random seeded weights with ``pretrained=False``), or a face encoder
such as ``facenet_vggface2``. Images are decoded by DataLoader workers, preprocessed
following the encoder's contract and embedded in batches by
:func:`modalink.encoders.embed_files.embed_files`. It exposes ``name``, ``dim``, ``config()``
(the embedding-cache key: the encoder's identity) and ``encode_paths(paths)``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from modalink.errors import InputError, UnknownNameError

__all__ = ["ImageFeatures", "check_image_encoder_name", "create_image_features"]


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

    def config(self) -> dict[str, Any]:
        """Everything that decides the features (the embedding-cache key): the encoder's
        :meth:`~modalink.encoders.Encoder.identity` (random weights built under ``seed``)."""
        return self.encoder.identity(self.seed)

    def encode_paths(self, paths: Sequence[str | os.PathLike], batch_size: int = 64) -> np.ndarray:
        """(len(paths), dim) float32 features of image files, in order; an image the encoder refuses
        gives a zero row, a file that cannot be read raises its :class:`~modalink.images.ImageError`."""
        from modalink.encoders.embed_files import embed_files
        from modalink.images import image_error

        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        for results in embed_files(self.encoder, paths, batch_size=batch_size, workers=self.num_workers,
                                   progress=False):
            for r in results:
                if r.stage == "read":
                    raise image_error(r.relpath, r.problem or "", r.detail)
                if r.embedding is not None:
                    out[r.index] = r.embedding
        return out


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
