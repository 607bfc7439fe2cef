"""Additive angular margin softmax (ArcFace, Deng et al., CVPR 2019) with its own class weights."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.losses.base import ModalinkLoss, register_loss


@register_loss("aam_softmax")
class AAMSoftmax(ModalinkLoss):
    """Cross-entropy over ``scale * cos`` logits with the target logit moved to ``cos(θ + m)``.

    ``θ`` is the angle between the normalised embedding and the normalised class weight;
    ``margin`` is in radians. ``cos(θ + m)`` stops being monotonic in θ once ``θ + m > π``,
    so (the standard ArcFace "th/mm" trick) the target logit is

    * ``cos(θ + m)``           when ``θ < π - m``  (i.e. ``cos θ > cos(π - m)``),
    * ``cos θ - m · sin m``    otherwise (a linear continuation; ``sin(π - m) = sin m``),

    or, with ``easy_margin=True``, ``cos(θ + m)`` when ``cos θ > 0`` and ``cos θ`` otherwise.
    """

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0,
                 easy_margin: bool = False) -> None:
        super().__init__()
        if embed_dim < 1 or num_classes < 2:
            raise InputError(f"need embed_dim >= 1 and num_classes >= 2, got {embed_dim}, {num_classes}")
        if not 0.0 <= margin < math.pi / 2:
            raise InputError(f"margin is in radians and must be in [0, pi/2), got {margin}")
        if scale <= 0:
            raise InputError(f"scale must be positive, got {scale}")
        self.embed_dim, self.num_classes = int(embed_dim), int(num_classes)
        self.margin, self.scale, self.easy_margin = float(margin), float(scale), bool(easy_margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.cos_m, self.sin_m = math.cos(margin), math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, C) cosine between each embedding and each class weight."""
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).t()

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled logits; the margin is applied to the target class only when ``labels`` is given."""
        self.check_embeddings(embeddings)
        if embeddings.shape[1] != self.embed_dim:
            raise ValueError(f"embeddings have dim {embeddings.shape[1]}, this loss expects {self.embed_dim}")
        cos = self.cosine(embeddings)
        if labels is None:
            return self.scale * cos
        self.check_labels(labels, embeddings.shape[0])
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got range "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        cos_t = cos.gather(1, labels[:, None]).clamp(-1.0, 1.0)
        sin_t = (1.0 - cos_t * cos_t).clamp(min=1e-12).sqrt()  # clamp keeps the sqrt gradient finite
        phi = cos_t * self.cos_m - sin_t * self.sin_m  # cos(θ + m)
        if self.easy_margin:
            phi = torch.where(cos_t > 0, phi, cos_t)
        else:
            phi = torch.where(cos_t > self.th, phi, cos_t - self.mm)
        out = cos.scatter(1, labels[:, None], phi.to(cos.dtype))
        return self.scale * out

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(embeddings, labels), labels)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_classes={self.num_classes}, margin={self.margin}, "
                f"scale={self.scale}, easy_margin={self.easy_margin}")
