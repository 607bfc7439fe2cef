"""Several trained models of one kind used as ONE model: a seed ensemble that every tool reading a
single model (scoring, export, the hub, the raw-media verifier) takes unchanged.

Each member sees the same inputs. Embedding outputs (``face``, ``voice``, ``fused``,
``embedding`` and the ``scoring_embedding``) are the members' side by side, divided by
sqrt(number of members), so the L2 distance between two ensemble embeddings is the root mean
square of the members' distances; ``logits*`` are the members' mean; any other output is the
first member's. On the FAME synthetic data this one-distance form gains as much as averaging the
members' z-normalised scores (see recipes/fame/README.md).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from modalink.errors import InputError
from modalink.models.registry import create_model, register_model

__all__ = ["EmbeddingEnsemble", "ensemble_of"]

_EMBEDDINGS = ("face", "voice", "fused", "embedding")


@register_model("embedding_ensemble")
class EmbeddingEnsemble(nn.Module):
    """``members``: each member's registry ``name`` and constructor ``kwargs`` (its ``model_spec``)."""

    def __init__(self, members: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        if not members:
            raise InputError("an embedding ensemble needs at least one member")
        self.members = nn.ModuleList(create_model(m["name"], **dict(m["kwargs"])) for m in members)
        self.scale = 1.0 / math.sqrt(len(self.members))

    @property
    def input_dims(self) -> Any:
        """The members' input widths (the first member's: they share one architecture)."""
        return getattr(self.members[0], "input_dims", None)

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        outs = [m(*args, **kwargs) for m in self.members]
        merged: dict[str, Any] = {}
        for key, first in outs[0].items():
            if isinstance(first, torch.Tensor) and key in _EMBEDDINGS:
                merged[key] = torch.cat([o[key] for o in outs], dim=-1) * self.scale
            elif isinstance(first, torch.Tensor) and key.startswith("logits"):
                merged[key] = torch.stack([o[key] for o in outs]).mean(0)
            else:
                merged[key] = first
        return merged

    def scoring_embedding(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """The members' scoring embeddings side by side (scaled): distances are the RMS of theirs."""
        return torch.cat([m.scoring_embedding(x, modality) for m in self.members], dim=-1) * self.scale


def ensemble_of(models: Sequence[nn.Module]) -> nn.Module:
    """An :class:`EmbeddingEnsemble` (built by ``create_model``, so it exports like any model)
    holding copies of trained ``models``' weights; each must have been built by ``create_model``."""
    specs = []
    for m in models:
        spec = getattr(m, "model_spec", None)
        if not spec:
            raise InputError(f"{type(m).__name__} was not built by create_model: it cannot join an ensemble")
        specs.append({"name": spec["name"], "kwargs": dict(spec["kwargs"])})
    ensemble = create_model("embedding_ensemble", members=specs)
    for target, source in zip(ensemble.members, models):
        target.load_state_dict(source.state_dict())
    return ensemble
