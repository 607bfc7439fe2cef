"""Batch builders: ``collate_fn`` s that turn samples into a method's inputs."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from modalink.classification.datasets import collate_embeddings
from modalink.errors import InputError

__all__ = ["BatchBuilder", "collate_embeddings"]

PIXEL_METHODS = ("chameleon", "multi_branch")


class BatchBuilder:
    """``collate_fn`` turning samples into a method's inputs.

    Chameleon batches get ``text_image`` (:class:`TextToImage`, vectorised over the batch;
    blank where text is missing); multi-branch batches get ``text_vec`` (the text encoder;
    zeros where text is missing). ``hflip`` flips photos at random (training only).
    """

    def __init__(self, kind: str, text_to_image: Any = None, text_encoder: Any = None,
                 hflip: bool = False) -> None:
        if kind not in PIXEL_METHODS:
            raise InputError(f"unknown method {kind!r}; use {', '.join(PIXEL_METHODS)}")
        if kind == "chameleon" and text_to_image is None:
            raise InputError("chameleon batches need a TextToImage")
        if kind == "multi_branch" and text_encoder is None:
            raise InputError("multi_branch batches need a text encoder")
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

