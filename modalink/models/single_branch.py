"""Single-branch shared-trunk model with modality stems (SRMM, arXiv 2408.07445; SiBraR, RecSys 2024).

The published SBNet, which shares EVERY layer, is :mod:`modalink.models.sbnet`. Here each
modality has a small stem projecting its features to a common width; ONE shared trunk
(the same weights for every modality) then maps every stem output to the embedding space.
During training a random non-empty subset of the available modalities can be kept per sample
("modality switching", a :mod:`modalink.models.modality_sampling` strategy held as
``model.sampler``), so the network learns to work when a modality is missing.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models.blocks import fc_block, mlp
from modalink.models.modality_sampling import ModalitySampler, SubsetSampler, build_sampler
from modalink.models.modality_sampling import parse_subsets  # noqa: F401  (its former home)
from modalink.models.registry import register_model

Inputs = Mapping[str, "torch.Tensor | None"]


class SingleBranch(nn.Module):
    """Per-modality stems → one shared trunk → L2-normalised embedding → optional classifier.

    Args:
        input_dims: feature width of each modality, e.g. ``{"face": 4096, "voice": 512}``.
        embed_dim: output embedding width.
        stem_dim: common width that every stem projects to.
        trunk_hidden: hidden widths of the shared trunk.
        norm: ``batch`` (SBNet), ``layer`` or ``none`` in stems and trunk.
        dropout: dropout in stems and trunk.
        num_classes: size of the classifier over the combined embedding (0: no classifier).
        modality_subsets: training-time switching: probability of each subset, keys like
            ``"face"``, ``"voice"``, ``"face+voice"`` (a per-sample :class:`SubsetSampler`);
            ``None`` keeps every available modality.
        combine: how the kept modalities make ``embedding``: ``"raw"`` — L2-normalised mean of
            the un-normalised trunk outputs (a modality with larger outputs dominates);
            ``"normalized"`` — L2-normalised mean of the per-modality L2-normalised embeddings
            (every modality has an equal vote, and an item with one modality gets exactly that
            modality's embedding, as at training time under modality sampling). The classifier
            (``logits``) reads the same combination before its final normalisation.
        sampler: another training-time strategy instead of ``modality_subsets``: a
            :class:`ModalitySampler` or a spec for :func:`build_sampler` (``{"name": "count",
            "kwargs": {"sample_sizes": [1, 2]}}``; a spec keeps the model exportable).

    The strategy is ``self.sampler``, called in training mode only; a trainer or recipe may
    replace it (``model.sampler = CountSampler(...)``). It holds no persistent state: state dicts
    and exported weights do not depend on it, and an exported model records only the
    constructor arguments. ``self.sampling_step`` counts the training calls that sampled (the
    ``step`` of schedules such as ``alternate``; it is not saved in checkpoints).
    """

    def __init__(self, input_dims: Mapping[str, int], embed_dim: int = 128, stem_dim: int = 512,
                 trunk_hidden: Sequence[int] = (512,), norm: str = "batch", dropout: float = 0.1,
                 num_classes: int = 0, modality_subsets: Mapping[str, float] | None = None,
                 combine: str = "raw", sampler: ModalitySampler | str | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if combine not in ("raw", "normalized"):
            raise InputError(f"combine must be 'raw' or 'normalized', got {combine!r}")
        self.combine = combine
        if not input_dims:
            raise InputError("SingleBranch needs at least one modality in input_dims")
        self.modalities = tuple(input_dims)
        self.input_dims = dict(input_dims)
        self.embed_dim = embed_dim
        self.stems = nn.ModuleDict({m: fc_block(d, stem_dim, norm, dropout) for m, d in input_dims.items()})
        self.trunk = mlp(stem_dim, trunk_hidden, embed_dim, norm, dropout)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else None
        if sampler is not None and modality_subsets:
            raise InputError("give modality_subsets or sampler, not both")
        self.sampler: ModalitySampler = (SubsetSampler(modality_subsets, self.modalities) if modality_subsets
                                         else build_sampler(sampler, self.modalities))
        self.sampling_step = 0

    # -- helpers -----------------------------------------------------------------------
    def _available(self, inputs: Inputs, present: Mapping[str, torch.Tensor] | None) -> tuple[int, torch.Tensor]:
        unknown = [m for m in inputs if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modality {unknown}; this model has {list(self.modalities)}")
        given = [x for x in inputs.values() if x is not None]
        if not given:
            raise ValueError("no modality given: pass at least one of " + ", ".join(self.modalities))
        batch = given[0].shape[0]
        device = given[0].device
        cols = []
        for m in self.modalities:
            x = inputs.get(m)
            if x is None:
                cols.append(torch.zeros(batch, dtype=torch.bool, device=device))
                continue
            if x.shape[0] != batch:
                raise ValueError(f"modality {m!r} has batch size {x.shape[0]}, expected {batch}")
            if x.shape[-1] != self.input_dims[m]:
                raise ValueError(f"modality {m!r} has width {x.shape[-1]}, expected {self.input_dims[m]}")
            mask = present.get(m) if present is not None else None
            cols.append(torch.ones(batch, dtype=torch.bool, device=device) if mask is None
                        else mask.to(device=device, dtype=torch.bool))
        return batch, torch.stack(cols, dim=1)

    def encode(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Un-normalised trunk output for one modality."""
        if modality not in self.stems:
            raise KeyError(f"unknown modality {modality!r}; this model has {list(self.modalities)}")
        return self.trunk(self.stems[modality](x))

    # -- public API ----------------------------------------------------------------------
    def forward(self, inputs: Inputs, present: Mapping[str, torch.Tensor] | None = None,
                sample: bool = True) -> dict[str, torch.Tensor]:
        """Returns per-modality embeddings (zeros where absent), ``mask`` (B×M kept modalities),
        the combined ``embedding`` and, with a classifier, ``logits`` and ``logits_<modality>``.
        In training mode ``self.sampler`` picks the kept modalities (``sample=False``: all)."""
        batch, available = self._available(inputs, present)
        if not bool(available.any(dim=1).all()):
            rows = (~available.any(dim=1)).nonzero().flatten().tolist()[:10]
            raise ValueError(f"sample(s) {rows} have no modality present; at least one is needed")
        keep = available
        if self.training and sample:
            if self.sampler.modalities not in (None, self.modalities):
                raise ValueError(f"the sampler's modalities {list(self.sampler.modalities)} are not this "
                                 f"model's {list(self.modalities)} (same names, same order)")
            keep = self.sampler(available, self.sampling_step)
            self.sampling_step += 1
        # one trunk call over every (sample, modality) row that is available
        stems, index = [], []
        for j, m in enumerate(self.modalities):
            rows = available[:, j].nonzero().flatten()
            if rows.numel():
                stems.append(self.stems[m](inputs[m][rows]))  # type: ignore[index]
                index.append((j, m, rows))
        h_all = self.trunk(torch.cat(stems, dim=0))
        h = h_all.new_zeros(batch, len(self.modalities), self.embed_dim)
        start = 0
        out: dict[str, torch.Tensor] = {}
        for j, m, rows in index:
            part = h_all[start:start + rows.numel()]
            start += rows.numel()
            h = h.index_put((rows, torch.full_like(rows, j)), part)
        for j, m in enumerate(self.modalities):
            out[m] = F.normalize(h[:, j], dim=1) * available[:, j:j + 1]
        w = keep.to(h.dtype).unsqueeze(-1)
        parts = h if self.combine == "raw" else F.normalize(h, dim=2)
        combined = (parts * w).sum(1) / w.sum(1).clamp_min(1.0)
        out["embedding"] = F.normalize(combined, dim=1)
        out["mask"] = keep
        out["available"] = available
        if self.head is not None:
            out["logits"] = self.head(combined)
            for j, m in enumerate(self.modalities):
                out[f"logits_{m}"] = self.head(h[:, j])
        return out

    #: how FaceVoiceObjective trains this family (see modalink.face_voice.objective.OBJECTIVES)
    face_voice_objective = "shared_pair"

    def scoring_embedding(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """What FAME distances compare: the L2-normalised embedding of one modality."""
        return self.embed(x, modality)

    def embed(self, x: torch.Tensor | Inputs, modality: str | None = None,
              present: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L2-normalised embedding of one modality (``x`` a tensor) or of the mean over the
        available modalities (``x`` a dict, missing ones as ``None`` or masked by ``present``)."""
        if isinstance(x, torch.Tensor):
            if modality is None:
                raise ValueError("embed(tensor) needs modality=...; pass a dict to combine modalities")
            return F.normalize(self.encode(x, modality), dim=1)
        was = self.training
        self.eval()
        try:
            return self.forward(x, present)["embedding"]
        finally:
            self.train(was)


@register_model("single_branch")
def single_branch(**kw: Any) -> SingleBranch:
    """Generic single-branch model; give ``input_dims``."""
    kw.setdefault("input_dims", {"a": 64, "b": 32})
    return SingleBranch(**kw)


@register_model("sbnet_stems")
def sbnet_stems(**kw: Any) -> SingleBranch:
    """NOT the published SBNet (that is ``sbnet``): a modalink variant for face (4096-D VGGFace)
    and voice (512-D) features with a modality-specific stem per modality (4096→512, 512→512)
    before a shared 512→256→128 trunk; most of its weights are modality-specific. Both
    modalities of every pair pass in each batch (no modality switching by default)."""
    kw.setdefault("input_dims", {"face": 4096, "voice": 512})
    kw.setdefault("modality_subsets", None)
    return SingleBranch(**kw)


@register_model("srmm")
def srmm(**kw: Any) -> SingleBranch:
    """SRMM for image + text embeddings with modality switching and a classifier."""
    kw.setdefault("input_dims", {"image": 768, "text": 768})
    kw.setdefault("norm", "layer")
    if kw.get("sampler") is None:
        kw.setdefault("modality_subsets", {"image": 1.0, "text": 1.0, "image+text": 1.0})
    return SingleBranch(**kw)
