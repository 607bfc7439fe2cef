"""Two-branch late-fusion classifier: the usual multi-branch baseline for missing-modality studies.

One MLP branch per modality (no shared weights), fused late: ``concat`` (a linear classifier over the
concatenated branch outputs), ``mlp`` (a one-hidden-layer fusion MLP over the concatenation) or
``mean`` (the average of per-branch logits). A missing
modality enters as a zero input vector — what a multi-branch network trained on complete data
sees when a modality is dropped at test time. Its forward signature matches
:class:`~modalink.models.single_branch.SingleBranch` so recipes can swap the two.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models.blocks import mlp
from modalink.models.registry import register_model


class LateFusion(nn.Module):
    """Per-modality MLP branches → late fusion (``concat``, ``mlp`` or ``mean`` of logits).

    Args:
        input_dims: feature width of each modality, e.g. ``{"image": 768, "text": 768}``.
        embed_dim: output width of every branch.
        hidden: hidden widths of each branch MLP.
        norm: ``batch``, ``layer`` or ``none``.
        dropout: dropout inside the branches.
        num_classes: classifier size (required, > 0).
        fusion: ``concat``, ``mlp`` or ``mean``.
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 256, hidden: Sequence[int] = (512,),
                 norm: str = "layer", dropout: float = 0.1, num_classes: int = 2, fusion: str = "concat") -> None:
        super().__init__()
        if not input_dims:
            raise InputError("LateFusion needs at least one modality in input_dims")
        if num_classes <= 0:
            raise InputError(f"LateFusion needs num_classes > 0, got {num_classes}")
        if fusion not in ("concat", "mlp", "mean"):
            raise InputError(f"unknown fusion {fusion!r}; use 'concat', 'mlp' or 'mean'")
        self.modalities = tuple(input_dims)
        self.input_dims = dict(input_dims)
        self.fusion = fusion
        self.branches = nn.ModuleDict({m: nn.Sequential(mlp(d, hidden, embed_dim, norm, dropout), nn.ReLU())
                                       for m, d in input_dims.items()})
        if fusion == "concat":
            self.head = nn.Linear(embed_dim * len(self.modalities), num_classes)
        elif fusion == "mlp":
            self.head = mlp(embed_dim * len(self.modalities), (embed_dim,), num_classes, norm, dropout)
        else:
            self.heads = nn.ModuleDict({m: nn.Linear(embed_dim, num_classes) for m in self.modalities})

    def forward(self, inputs: Mapping[str, torch.Tensor | None],
                present: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``inputs[m]`` (B, D_m) or ``None``; ``present[m]`` (B,) bool. Absent rows are zeroed.

        Returns per-modality branch outputs, ``mask`` (B×M present), ``embedding`` and ``logits``.
        """
        given = [x for x in inputs.values() if x is not None]
        if not given:
            raise ValueError("no modality given: pass at least one of " + ", ".join(self.modalities))
        unknown = [m for m in inputs if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; this model has {list(self.modalities)}")
        batch, device, dtype = given[0].shape[0], given[0].device, given[0].dtype
        out: dict[str, torch.Tensor] = {}
        feats, masks = [], []
        for m in self.modalities:
            x = inputs.get(m)
            if x is None:
                x = torch.zeros(batch, self.input_dims[m], device=device, dtype=dtype)
                mask = torch.zeros(batch, dtype=torch.bool, device=device)
            else:
                if x.shape[-1] != self.input_dims[m]:
                    raise ValueError(f"modality {m!r} has width {x.shape[-1]}, expected {self.input_dims[m]}")
                p = present.get(m) if present is not None else None
                mask = torch.ones(batch, dtype=torch.bool, device=device) if p is None else p.to(device).bool()
                x = x * mask.unsqueeze(1).to(x.dtype)
            h = self.branches[m](x)
            out[m] = F.normalize(h, dim=1)
            feats.append(h)
            masks.append(mask)
        out["mask"] = torch.stack(masks, dim=1)
        if self.fusion in ("concat", "mlp"):
            fused = torch.cat(feats, dim=1)
            out["logits"] = self.head(fused)
        else:
            fused = torch.stack(feats, dim=1).mean(dim=1)
            out["logits"] = torch.stack([self.heads[m](h) for m, h in zip(self.modalities, feats)], 0).mean(0)
        out["embedding"] = F.normalize(fused, dim=1)
        return out

    def embed(self, x: torch.Tensor | Mapping[str, torch.Tensor | None], modality: str | None = None,
              present: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L2-normalised branch output of one modality (``x`` a tensor) or the fused embedding."""
        if isinstance(x, torch.Tensor):
            if modality not in self.branches:
                raise KeyError(f"embed(tensor) needs modality in {list(self.modalities)}, got {modality!r}")
            return F.normalize(self.branches[modality](x), dim=1)
        return self.forward(x, present)["embedding"]


@register_model("late_fusion")
def late_fusion(**kw: Any) -> LateFusion:
    """Two-branch late-fusion baseline for image + text embeddings."""
    kw.setdefault("input_dims", {"image": 768, "text": 768})
    return LateFusion(**kw)
