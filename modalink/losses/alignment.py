"""Alignment between paired embeddings of two modalities (mean squared error)."""
from __future__ import annotations

import torch

from modalink.losses.base import ModalinkLoss, normalize_if, register_loss


@register_loss("alignment_mse")
class AlignmentMSE(ModalinkLoss):
    """Mean squared error between paired rows ``a[i]`` and ``b[i]``, over all elements.

    ``normalize=True`` (default) L2-normalises both sides first, so the loss is
    ``mean_i (2 - 2 cos(a_i, b_i)) / D`` and cannot be lowered by shrinking norms.
    ``mask`` (bool, shape (B,)) keeps only the rows where both modalities are present; an
    all-false mask gives a zero loss that still belongs to the graph.
    """

    def __init__(self, normalize: bool = True) -> None:
        super().__init__()
        self.normalize = bool(normalize)

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_embeddings(a, "a")
        self.check_embeddings(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        a = normalize_if(a, self.normalize)
        b = normalize_if(b, self.normalize)
        sq = (a - b).pow(2)
        if mask is None:
            return sq.mean()
        if mask.shape != (a.shape[0],) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape ({a.shape[0]},), "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        if not bool(mask.any()):
            return sq.sum() * 0.0
        return sq[mask].mean()

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}"
