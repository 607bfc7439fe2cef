"""Small building blocks shared by the models."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from modalink.errors import InputError


def norm_layer(kind: str, dim: int) -> nn.Module:
    """``batch`` → BatchNorm1d, ``layer`` → LayerNorm, ``none`` → Identity."""
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise InputError(f"unknown norm {kind!r}; use 'batch', 'layer' or 'none'")


def fc_block(in_dim: int, out_dim: int, norm: str = "batch", dropout: float = 0.0,
             activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear → norm → activation → dropout (the FOP ``make_fc_1d`` layout when norm='batch')."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), norm_layer(norm, out_dim), activation(),
                         nn.Dropout(dropout))


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, norm: str = "batch",
        dropout: float = 0.0) -> nn.Sequential:
    """``fc_block`` for each hidden width, then a plain Linear to ``out_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(fc_block(d, h, norm, dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)
