"""SBNet (Saeed et al., ICASSP 2023): ONE fully shared network for faces and voices.

The public code (``msaadsaeed/SBNet``, ``ssnet_fop/retrieval_model.py``) feeds single-modality
samples — a face row or a voice row, both 512-D — through the same layers::

    fc1: Linear(512, 128) → BatchNorm1d → ReLU → Dropout(0.5)
    fc2: Linear(128, 128) → BatchNorm1d → ReLU → Dropout(0.5)
    L2-normalise                         (the embedding: non-negative, unit length)
    logits_layer: Linear(128, n_class)   (reads the normalised embedding)

Every weight is shared by both modalities. Parameter names follow the public code
(``embed_branch.fc1.0.weight``, ..., ``logits_layer.weight``), so its state dicts load as they are.

Where the modalities' input widths differ (e.g. 4096-D VGGFace faces and 512-D voices in the FAME
release), a modality whose width is not the shared input width gets ONE bias-free linear map to
it (``proj.<modality>``, no norm, no activation): the smallest change that lets its rows enter
the shared network. ``projection="random"`` (default) fixes it to a seeded Gaussian random
projection (scaled by 1/sqrt(width), stored with the weights but never trained), so that no
trainable weight is modality-specific at all; ``projection="linear"`` learns it (2.1 M
face-only weights for 4096-D faces, 96 % of the model; on the synthetic FAME set it trains far
worse at the public lr 1e-2: validation EER ~45 % vs ~23 % after one epoch). With equal widths
there is no projection.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models.blocks import fc_block
from modalink.models.registry import register_model


class SharedEmbedBranch(nn.Module):
    """``fc1`` → ``fc2`` (each Linear → BatchNorm1d → ReLU → Dropout) → L2-normalise."""

    def __init__(self, in_dim: int, embed_dim: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc1 = fc_block(in_dim, embed_dim, "batch", dropout)
        self.fc2 = fc_block(embed_dim, embed_dim, "batch", dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(self.fc1(x)), dim=1)


class RandomProjection(nn.Module):
    """A fixed (untrained) Gaussian random projection ``d_in → d_out``, scaled by 1/sqrt(d_in);
    the matrix is a buffer (saved in state dicts) drawn from a generator seeded with ``seed``."""

    def __init__(self, d_in: int, d_out: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(d_out, d_in, generator=g) / d_in ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()


class SBNet(nn.Module):
    """One shared network over single-modality rows.

    Args:
        input_dims: feature width per modality, e.g. ``{"face": 512, "voice": 512}``.
        embed_dim: width of fc1, fc2 and the embedding (public: 128).
        num_classes: identities of the classifier on the normalised embedding (0: none).
        dropout: dropout after fc1 and fc2 (public: 0.5).
        shared_dim: input width of the shared network; default: the smallest modality width.
            Modalities of another width get the bias-free projection ``proj.<modality>``.
        projection: ``"random"`` (fixed, see ``RandomProjection``) or ``"linear"`` (learned).
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 128, num_classes: int = 0,
                 dropout: float = 0.5, shared_dim: int | None = None, projection: str = "random") -> None:
        super().__init__()
        if projection not in ("linear", "random"):
            raise InputError(f"projection must be 'linear' or 'random', got {projection!r}")
        if not input_dims:
            raise InputError("SBNet needs at least one modality in input_dims")
        self.modalities = tuple(input_dims)
        self.input_dims = dict(input_dims)
        self.embed_dim = embed_dim
        self.shared_dim = int(shared_dim or min(input_dims.values()))
        self.projection = projection
        self.proj = nn.ModuleDict({
            m: (nn.Linear(d, self.shared_dim, bias=False) if projection == "linear"
                else RandomProjection(d, self.shared_dim, seed=j))
            for j, (m, d) in enumerate(input_dims.items()) if d != self.shared_dim})
        self.embed_branch = SharedEmbedBranch(self.shared_dim, embed_dim, dropout)
        self.logits_layer = nn.Linear(embed_dim, num_classes) if num_classes > 0 else None

    def reset_parameters_public(self) -> "SBNet":
        """The public initialisation: xavier-uniform weights, biases 0.01 (Linear layers)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):  # the public code inits every Linear this way
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0.01)
        return self

    def modality_specific_parameters(self) -> int:
        """Number of TRAINABLE weights used by one modality only (the learned width projections)."""
        return sum(p.numel() for p in self.proj.parameters())

    def to_shared(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Rows of one modality at the shared input width (projected where widths differ)."""
        if modality not in self.input_dims:
            raise KeyError(f"unknown modality {modality!r}; this model has {list(self.modalities)}")
        if x.shape[-1] != self.input_dims[modality]:
            raise ValueError(f"modality {modality!r} has width {x.shape[-1]}, expected {self.input_dims[modality]}")
        return self.proj[modality](x) if modality in self.proj else x

    def forward(self, inputs: Mapping[str, torch.Tensor], interleave: bool = False) -> dict[str, torch.Tensor]:
        """Embed the rows of every given modality in ONE pass of the shared network (one
        BatchNorm batch over all of them).

        Rows are stacked modality after modality in ``inputs`` order, or with ``interleave``
        (equal row counts needed) row by row: ``{"face": f, "voice": v}`` gives f0 v0 f1 v1 ...
        (SBNet's ``fvfv`` layout; ``{"voice": v, "face": f}`` gives ``vfvf``). Returns
        ``embedding`` and ``logits`` for all rows in that order, ``modality`` (index into
        ``self.modalities`` per row), and per modality ``<m>`` / ``logits_<m>`` (its rows, input order).
        """
        given = [(m, x) for m, x in inputs.items() if x is not None]
        if not given:
            raise ValueError("no modality given: pass at least one of " + ", ".join(self.modalities))
        parts = [self.to_shared(x, m) for m, x in given]
        ids = [torch.full((x.shape[0],), self.modalities.index(m), dtype=torch.long, device=x.device)
               for m, x in given]
        if interleave and len(parts) > 1:
            n = parts[0].shape[0]
            if any(p.shape[0] != n for p in parts):
                raise ValueError("interleave=True needs the same number of rows for every modality")
            rows = torch.stack(parts, dim=1).reshape(n * len(parts), self.shared_dim)
            modality = torch.stack(ids, dim=1).reshape(-1)
        else:
            rows, modality = torch.cat(parts), torch.cat(ids)
        emb = self.embed_branch(rows)
        out: dict[str, torch.Tensor] = {"embedding": emb, "modality": modality}
        logits = self.logits_layer(emb) if self.logits_layer is not None else None
        if logits is not None:
            out["logits"] = logits
        for m, _ in given:
            sel = modality == self.modalities.index(m)
            out[m] = emb[sel]
            if logits is not None:
                out[f"logits_{m}"] = logits[sel]
        return out

    #: how FaceVoiceObjective trains this family (see modalink.face_voice.objective.OBJECTIVES)
    face_voice_objective = "single_modality_rows"

    def embed(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """L2-normalised embedding of rows of one modality (uses the current train/eval mode)."""
        return self.embed_branch(self.to_shared(x, modality))

    def scoring_embedding(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """What FAME distances compare: the embedding."""
        return self.embed(x, modality)


@register_model("sbnet")
def sbnet(**kw: Any) -> SBNet:
    """SBNet as published: one fully shared fc 512→128→128 network (BN, ReLU, dropout 0.5,
    L2-normalised), classifier on the embedding. Default inputs: 4096-D VGGFace faces (a fixed
    random projection to 512, no trainable face-only weight) and 512-D voices."""
    kw.setdefault("input_dims", {"face": 4096, "voice": 512})
    return SBNet(**kw)
