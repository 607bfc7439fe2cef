"""Two-branch face–voice model (FOP, ICASSP 2022 — the FAME baseline) and its variants."""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models.blocks import fc_block
from modalink.models.fusion import create_fusion
from modalink.models.registry import register_model


class EmbedBranch(nn.Module):
    """Linear → BatchNorm1d → ReLU → Dropout → L2-normalise (official key: ``fc1``)."""

    def __init__(self, in_dim: int, embed_dim: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc1 = fc_block(in_dim, embed_dim, "batch", dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc1(x), dim=1)


class TwoBranch(nn.Module):
    """One branch per modality, a fusion block and a classifier over the fused vector.

    ``forward(face, voice)`` returns ``{"fused", "logits", "face", "voice"}`` where ``face`` and
    ``voice`` are the scoring embeddings (what the official code takes the L2 distance of).
    """

    modalities = ("face", "voice")

    def __init__(self, face_dim: int = 4096, voice_dim: int = 512, embed_dim: int = 128,
                 num_classes: int = 0, fusion: str = "gated", dropout: float = 0.5,
                 fusion_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.input_dims = {"face": face_dim, "voice": voice_dim}
        self.embed_dim = embed_dim
        self.fusion_kind = fusion
        self.voice_branch = EmbedBranch(voice_dim, embed_dim, dropout)
        self.face_branch = EmbedBranch(face_dim, embed_dim, dropout)
        self.fusion_layer = create_fusion(fusion, embed_dim, **dict(fusion_kwargs or {}))
        self.logits_layer = nn.Linear(embed_dim, num_classes) if num_classes > 0 else None

    def branch(self, modality: str) -> EmbedBranch:
        if modality not in self.modalities:
            raise KeyError(f"unknown modality {modality!r}; this model has {self.modalities}")
        return self.face_branch if modality == "face" else self.voice_branch

    #: how FaceVoiceObjective trains this family (see modalink.face_voice.objective.OBJECTIVES)
    face_voice_objective = "fused_pair"

    def forward(self, face: torch.Tensor | Mapping[str, torch.Tensor], voice: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """``forward({"face": F, "voice": V})`` — the call every modalink model takes — or
        ``forward(F, V)`` as the official code calls it."""
        if isinstance(face, Mapping):
            face, voice = face["face"], face["voice"]
        fused, f, v = self.fusion_layer(self.face_branch(face), self.voice_branch(voice))
        out = {"fused": fused, "face": f, "voice": v}
        if self.logits_layer is not None:
            out["logits"] = self.logits_layer(fused)
        return out

    def scoring_embedding(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """The vector the official scorer compares: tanh(branch) for gated fusions, else branch."""
        e = self.branch(modality)(x)
        return e if self.fusion_kind == "linear" else torch.tanh(e)

    def embed(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """L2-normalised embedding of one modality."""
        return F.normalize(self.scoring_embedding(x, modality), dim=1)

    def load_official_checkpoint(self, path_or_state: str | os.PathLike | Mapping[str, Any],
                                 strict: bool = True) -> dict[str, Any]:
        """Load an official FOP ``checkpoint.pth.tar`` (``{"epoch", "state_dict"}``) or state dict.

        Returns the checkpoint's metadata (e.g. ``epoch``). Shapes are checked with messages
        that name the key, so a v1 checkpoint on a v2 model fails clearly.
        """
        if isinstance(path_or_state, Mapping):
            ckpt: Mapping[str, Any] = path_or_state
        else:
            from modalink.io import load_torch_weights

            ckpt = load_torch_weights(path_or_state, "official checkpoint")
        state = ckpt.get("state_dict", ckpt)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.state_dict()
        for k, v in state.items():
            if k in own and tuple(own[k].shape) != tuple(v.shape):
                raise InputError(f"checkpoint key {k!r} has shape {tuple(v.shape)}, model expects "
                                 f"{tuple(own[k].shape)} (wrong version or n_class?)")
        if self.logits_layer is None and any(k.startswith("logits_layer.") for k in state):
            n = state["logits_layer.weight"].shape[0]
            self.logits_layer = nn.Linear(self.embed_dim, n)
        self.load_state_dict(state, strict=strict)
        return {k: v for k, v in ckpt.items() if k != "state_dict"}


@register_model("fop")
def fop(**kw: Any) -> TwoBranch:
    """FOP with the gated fusion (the FAME baseline)."""
    kw.setdefault("fusion", "gated")
    return TwoBranch(**kw)


@register_model("fop_linear")
def fop_linear(**kw: Any) -> TwoBranch:
    """FOP with the linear weighted average fusion."""
    return TwoBranch(**{**kw, "fusion": "linear"})


@register_model("fop_enhanced")
def fop_enhanced(**kw: Any) -> TwoBranch:
    """Two-branch model with the PAEFF-style enhanced gated fusion."""
    return TwoBranch(**{**kw, "fusion": "enhanced"})
