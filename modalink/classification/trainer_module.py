"""The one trainer module of missing-modality classification, and SRMM's modality switching.

:class:`MissingModalityModule` wraps any classifier of the registry for
:class:`modalink.engine.Trainer`: ``forward(batch) -> {"loss", "acc"}``. What differs between
methods is only how a batch is handed to the network (``inputs``):

* ``"text_image"`` — Chameleon: ``net(image, text_image, has_image, has_text)``;
* ``"text_vector"`` — the multi-branch baseline: ``net(image, text_vec, has_image, has_text)``;
* ``"embeddings"`` — SRMM / late fusion: ``net({"image": ..., "text": ...}, present)``, after the
  optional training-time :class:`ModalitySwitch`.

The loss is :func:`modalink.models.image_classifier.classification_loss` (cross-entropy, or BCE for
multi-label data) plus, with ``aux_weight`` > 0, the mean loss of each kept modality's own logits
(``logits_image``/``logits_text`` on the rows that kept it), so each input alone stays informative.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from modalink.models.image_classifier import classification_loss
from modalink.models.single_branch import parse_subsets

__all__ = ["MODALITIES", "INPUTS", "ModalitySwitch", "MissingModalityModule"]

MODALITIES = ("image", "text")
INPUTS = ("text_image", "text_vector", "embeddings")


class ModalitySwitch:
    """Training-time modality switching: which available modalities each sample keeps.

    Modes: ``per_sample`` (a subset drawn per sample from ``subsets`` probabilities — SRMM's
    random switching), ``per_batch`` (one subset drawn for the whole batch), ``alternate``
    (subsets in turn, one per batch: image, text, image+text, image, ...) and ``none`` (keep
    everything). Rows whose subset keeps nothing available fall back to what is available.
    """

    MODES = ("per_sample", "per_batch", "alternate", "none")

    def __init__(self, subsets: Mapping[str, float], modalities: Sequence[str] = MODALITIES,
                 mode: str = "per_sample") -> None:
        if mode not in self.MODES:
            raise ValueError(f"model.switching={mode!r}; use one of {', '.join(self.MODES)}")
        self.mode = mode
        self.modalities = tuple(modalities)
        self.names = list(subsets)
        self.subsets, self.probs = parse_subsets(subsets, self.modalities)

    def __call__(self, available: torch.Tensor, step: int = 0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``available`` (B×M bool) → kept (B×M bool), a subset of ``available``."""
        if self.mode == "none":
            return available
        b = available.shape[0]
        if self.mode == "per_sample":
            k = torch.multinomial(self.probs, b, replacement=True, generator=generator)
        elif self.mode == "per_batch":
            k = torch.multinomial(self.probs, 1, generator=generator).expand(b)
        else:
            active = (self.probs > 0).nonzero().flatten()
            k = active[step % len(active)].expand(b)
        keep = self.subsets[k].to(available.device) & available
        empty = ~keep.any(dim=1)
        return torch.where(empty.unsqueeze(1), available, keep)


class MissingModalityModule(nn.Module):
    """Trainer module around a classifier (see the module docstring).

    The switching step counter is a buffer, so schedules resume with checkpoints. The wrapped
    network is ``self.net``: that is what a run exports (:func:`modalink.hub.save_pretrained`).
    """

    def __init__(self, net: nn.Module, inputs: str, multilabel: bool = False, aux_weight: float = 0.0,
                 switch: ModalitySwitch | None = None) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs={inputs!r}; use one of {', '.join(INPUTS)}")
        if switch is not None and inputs != "embeddings":
            raise ValueError("modality switching needs inputs='embeddings'")
        self.net, self.inputs, self.multilabel = net, inputs, bool(multilabel)
        self.aux_weight = float(aux_weight)
        self.switch = switch
        if inputs == "embeddings":
            self.register_buffer("switch_step", torch.zeros((), dtype=torch.long))

    def run(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The network's outputs for a batch (modality dropout / switching only in train mode)."""
        # one call for every network: net({modality: tensor}, {modality: availability})
        if self.inputs in ("text_image", "text_vector"):
            text = "text_image" if self.inputs == "text_image" else "text"
            inputs = {"image": batch["image"], text: batch["text_image" if text == "text_image" else "text_vec"]}
            return self.net(inputs, {"image": batch["has_image"], text: batch["has_text"]})
        keep = torch.stack([batch["has_image"].bool(), batch["has_text"].bool()], dim=1)
        if self.training and self.switch is not None:
            keep = self.switch(keep, int(self.switch_step))
            self.switch_step += 1
        present = {m: keep[:, j] for j, m in enumerate(MODALITIES)}
        return self.net({m: batch[m] for m in MODALITIES}, present)

    @staticmethod
    def _kept(out: Mapping[str, torch.Tensor], j: int, modality: str) -> torch.Tensor:
        """Rows that kept ``modality`` (after dropout / switching), as the network reports them."""
        if f"has_{modality}" in out:
            return out[f"has_{modality}"]
        return out["mask"][:, j]

    def forward(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = self.run(batch)
        y = batch["label"]
        loss = classification_loss(out["logits"], y, self.multilabel)
        if self.aux_weight > 0:
            aux = []
            for j, m in enumerate(MODALITIES):
                if f"logits_{m}" not in out:
                    continue
                rows = self._kept(out, j, m)
                if bool(rows.any()):
                    aux.append(classification_loss(out[f"logits_{m}"][rows], y[rows], self.multilabel))
            if aux:
                loss = loss + self.aux_weight * torch.stack(aux).mean()
        if self.multilabel:
            acc = ((out["logits"] > 0) == (y > 0.5)).float().mean()
        else:
            acc = (out["logits"].argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}
