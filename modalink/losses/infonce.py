"""Symmetric cross-modal InfoNCE (CLIP-style) with optional label-aware negatives and
negatives gathered across processes."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.losses.base import ModalinkLoss, all_gather_rows, normalize_if, register_loss


@register_loss("infonce")
class InfoNCE(ModalinkLoss):
    """``(CE(a·bᵀ/τ, diag) + CE(b·aᵀ/τ, diag)) / 2`` for paired rows ``a[i] ↔ b[i]``.

    * ``labels`` (optional, (B,)): pairs ``(i, j)``, ``j ≠ i``, whose rows share an identity
      are removed from the softmax denominators (they are neither positives nor negatives).
    * Temperature: ``learnable=True`` keeps ``log(1/τ)`` as a parameter initialised from
      ``temperature`` and clamps it in place to ``[min_temperature, max_temperature]`` at
      every forward (CLIP's logit-scale cap); ``learnable=False`` keeps τ a fixed float
      (no parameter, nothing in the state dict).
    * ``gather=True``: when ``torch.distributed`` is initialised, the other side of every
      pair is gathered from all processes (with gradient for the local shard), so each row
      competes with the global batch; every process must call the loss. Single-process
      runs compute the plain loss. The value is the mean over local rows; with DDP's
      gradient averaging this equals the global-batch loss.
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = True, normalize: bool = True,
                 gather: bool = True, min_temperature: float = 0.01, max_temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise InputError(f"temperature must be positive, got {temperature}")
        if learnable and not 0 < min_temperature <= temperature <= max_temperature:
            raise InputError(f"need 0 < min_temperature <= temperature <= max_temperature, got "
                             f"{min_temperature}, {temperature}, {max_temperature}")
        self.learnable, self.normalize, self.gather = bool(learnable), bool(normalize), bool(gather)
        self.min_temperature, self.max_temperature = float(min_temperature), float(max_temperature)
        self.logit_scale: nn.Parameter | None = None
        self._fixed_temperature = float(temperature)
        if learnable:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature), dtype=torch.float32))

    @property
    def temperature(self) -> float:
        """The current temperature τ as a float."""
        if self.logit_scale is None:
            return self._fixed_temperature
        return float(torch.exp(-self.logit_scale.detach()))

    def _scale(self, like: torch.Tensor) -> torch.Tensor:
        if self.logit_scale is None:
            return torch.tensor(1.0 / self._fixed_temperature, dtype=like.dtype, device=like.device)
        with torch.no_grad():
            self.logit_scale.clamp_(math.log(1.0 / self.max_temperature), math.log(1.0 / self.min_temperature))
        return self.logit_scale.exp().to(like.dtype)

    def forward(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_embeddings(a, "a")
        self.check_embeddings(b, "b")
        if a.shape != b.shape:
            raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        if labels is not None:
            self.check_labels(labels, a.shape[0])
        a = normalize_if(a, self.normalize)
        b = normalize_if(b, self.normalize)
        if self.gather:
            a_all, offset = all_gather_rows(a, with_grad=True)
            b_all, _ = all_gather_rows(b, with_grad=True)
            labels_all = all_gather_rows(labels, with_grad=False)[0] if labels is not None else None
        else:
            a_all, b_all, offset, labels_all = a, b, 0, labels
        scale = self._scale(a)
        logits_ab = scale * (a @ b_all.t())
        logits_ba = scale * (b @ a_all.t())
        n = a.shape[0]
        target = torch.arange(offset, offset + n, device=a.device)
        if labels is not None:
            drop = labels[:, None] == labels_all[None, :]
            drop[torch.arange(n, device=a.device), target] = False
            logits_ab = logits_ab.masked_fill(drop, float("-inf"))
            logits_ba = logits_ba.masked_fill(drop, float("-inf"))
        return 0.5 * (F.cross_entropy(logits_ab, target) + F.cross_entropy(logits_ba, target))

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature:.4g}, learnable={self.learnable}, "
                f"normalize={self.normalize}, gather={self.gather}")
