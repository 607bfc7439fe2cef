"""Orthogonal projection loss (Ranasinghe et al., ICCV 2021) in the form the FOP baseline
(Saeed et al., ICASSP 2022) trains with."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.losses.base import ModalinkLoss, register_loss


@register_loss("opl")
class OrthogonalProjectionLoss(ModalinkLoss):
    """Pull same-identity features together, push different identities towards orthogonal.

    With ``f`` the L2-normalised features and ``G = f fᵀ``::

        pos = Σ G[same label, i≠j] / (#pairs + 1e-6)
        neg = Σ |G[different label]| / (#pairs + 1e-6)
        loss = (1 - pos) + gamma * neg

    (``abs_negatives=False`` drops the absolute value, which some re-implementations do.)
    """

    def __init__(self, gamma: float = 0.7, abs_negatives: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if gamma < 0:
            raise InputError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.abs_negatives = bool(abs_negatives)
        self.eps = float(eps)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check_embeddings(features, "features")
        self.check_labels(labels, features.shape[0])
        f = F.normalize(features, p=2, dim=1)
        dot = f @ f.t()
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
        mask_pos = (same & ~eye).to(dot.dtype)
        mask_neg = (~same).to(dot.dtype)
        pos_mean = (mask_pos * dot).sum() / (mask_pos.sum() + self.eps)
        neg = mask_neg * dot
        if self.abs_negatives:
            neg = neg.abs()
        neg_mean = neg.sum() / (mask_neg.sum() + self.eps)
        return (1.0 - pos_mean) + self.gamma * neg_mean

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, abs_negatives={self.abs_negatives}"
