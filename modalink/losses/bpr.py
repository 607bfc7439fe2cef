"""Bayesian personalised ranking (BPR, Rendle et al. 2009) with k sampled negatives per positive."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.losses.base import ModalinkLoss, register_loss


@register_loss("bpr")
class BPRLoss(ModalinkLoss):
    """``mean over (b, j) of -log σ((s⁺_b − s⁻_bj) / temperature)``.

    Args:
        temperature: divides the score differences (use < 1 with cosine scores in [-1, 1]).

    ``forward(pos_scores, neg_scores)``: ``pos_scores`` (B,) scores of the positive items,
    ``neg_scores`` (B, k) scores of k sampled negatives per positive (a (B,) vector means k=1).
    ``neg_mask`` (B, k) bool optionally drops negatives (e.g. accidental positives); the mean
    runs over the kept pairs.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor,
                neg_mask: torch.Tensor | None = None) -> torch.Tensor:
        if pos_scores.ndim != 1 or pos_scores.numel() == 0:
            raise ValueError(f"pos_scores must be a non-empty (B,) vector, got shape {tuple(pos_scores.shape)}")
        if neg_scores.ndim == 1:
            neg_scores = neg_scores.unsqueeze(1)
        if neg_scores.ndim != 2 or neg_scores.shape[0] != pos_scores.shape[0]:
            raise ValueError(f"neg_scores must be (B, k) with B={pos_scores.shape[0]}, got {tuple(neg_scores.shape)}")
        # -log σ(x) = softplus(-x)
        per_pair = F.softplus((neg_scores - pos_scores.unsqueeze(1)) / self.temperature)
        if neg_mask is None:
            return per_pair.mean()
        if neg_mask.shape != neg_scores.shape:
            raise ValueError(f"neg_mask shape {tuple(neg_mask.shape)} != neg_scores shape {tuple(neg_scores.shape)}")
        w = neg_mask.to(per_pair.dtype)
        return (per_pair * w).sum() / w.sum().clamp_min(1.0)
