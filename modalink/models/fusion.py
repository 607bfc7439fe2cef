"""Fusion of a face and a voice embedding into one vector.

Every fusion returns ``(fused, face_scoring, voice_scoring)``: the scoring tensors are what
FAME scores are computed from (L2 distance), exactly as the official FOP code does
(``tanh`` of the branch output for the gated fusions, the branch output for the linear one).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import UnknownNameError
from modalink.models.blocks import fc_block


class _Block(nn.Module):
    """Linear → BN → ReLU → Dropout held under ``.block`` (the checkpoint's key layout)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.block = fc_block(in_dim, out_dim, "batch", dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class GatedFusion(nn.Module):
    """FOP gate: ``g = σ(W2 · ReLU(BN(W1 [f; v])))``, ``out = g ⊙ tanh f + (1 − g) ⊙ tanh v``.

    Parameter names match the official checkpoint (``attention.0.block.{0,1}``, ``attention.1``).
    """

    def __init__(self, dim: int = 128, mid_dim: int = 128, out_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        out_dim = out_dim or dim
        self.attention = nn.Sequential(_Block(2 * dim, mid_dim, dropout), nn.Linear(mid_dim, out_dim))

    def forward(self, face: torch.Tensor, voice: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gate = torch.sigmoid(self.attention(torch.cat([face, voice], dim=1)))
        f, v = torch.tanh(face), torch.tanh(voice)
        return gate * f + (1.0 - gate) * v, f, v


class LinearWeightedAvg(nn.Module):
    """FOP linear fusion: two learnable scalars, ``w1·f + w2·v`` (keys ``weight1``, ``weight2``)."""

    def __init__(self, dim: int = 128, **_: object) -> None:
        super().__init__()
        self.weight1 = nn.Parameter(torch.rand(1))
        self.weight2 = nn.Parameter(torch.rand(1))

    def forward(self, face: torch.Tensor, voice: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.weight1 * face + self.weight2 * voice, face, voice


class EnhancedGatedFusion(nn.Module):
    """PAEFF-style gate: ``g = σ(Conv1d(gelu(f) ⊙ gelu(v)))`` over the embedding axis.

    The 1-D convolution looks at neighbouring dimensions of the element-wise interaction, so
    the gate depends on agreement between the modalities rather than on their concatenation.
    """

    def __init__(self, dim: int = 128, kernel_size: int = 5, channels: int = 8, **_: object) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size, padding=pad), nn.GELU(),
            nn.Conv1d(channels, 1, kernel_size, padding=pad),
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, face: torch.Tensor, voice: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inter = F.gelu(face) * F.gelu(voice)
        gate = torch.sigmoid(self.conv(inter.unsqueeze(1)).squeeze(1))
        f, v = torch.tanh(face), torch.tanh(voice)
        return self.norm(gate * f + (1.0 - gate) * v), f, v


FUSIONS = {"gated": GatedFusion, "linear": LinearWeightedAvg, "enhanced": EnhancedGatedFusion}


def create_fusion(kind: str, dim: int, **kw: object) -> nn.Module:
    """Build a fusion block by name (``gated``, ``linear``, ``enhanced``)."""
    if kind not in FUSIONS:
        raise UnknownNameError(f"unknown fusion {kind!r}; known: {', '.join(FUSIONS)}")
    return FUSIONS[kind](dim=dim, **kw)
