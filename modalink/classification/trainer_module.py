"""The one trainer module of missing-modality classification.

:class:`MissingModalityModule` wraps any classifier of the registry for
:class:`modalink.engine.Trainer`: ``forward(batch) -> {"loss", "acc"}``. What differs between
methods is only how a batch is handed to the network (``inputs``):

* ``"text_image"`` — Chameleon: ``net(image, text_image, has_image, has_text)``;
* ``"text_vector"`` — the multi-branch baseline: ``net(image, text_vec, has_image, has_text)``;
* ``"embeddings"`` — SRMM / late fusion: ``net({"image": ..., "text": ...}, present)``, after the
  optional training-time modality sampler (any
  :class:`modalink.models.modality_sampling.ModalitySampler`, e.g. SRMM's switching
  :class:`~modalink.models.modality_sampling.SubsetSampler`).

The loss is :func:`modalink.models.image_classifier.classification_loss` (cross-entropy, or BCE for
multi-label data) plus, with ``aux_weight`` > 0, the mean loss of each kept modality's own logits
(``logits_image``/``logits_text`` on the rows that kept it), so each input alone stays informative.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from modalink.errors import InputError
from modalink.models.image_classifier import classification_loss
from modalink.models.modality_sampling import ModalitySampler

__all__ = ["MODALITIES", "INPUTS", "MissingModalityModule"]

MODALITIES = ("image", "text")
INPUTS = ("text_image", "text_vector", "embeddings")


class MissingModalityModule(nn.Module):
    """Trainer module around a classifier (see the module docstring).

    ``sampler`` (``self.sampler``, replaceable): the training-time modality sampling applied to
    the availability masks before the network (``inputs="embeddings"`` only; ``None``: none
    here — image classifiers sample inside the network, as their own ``net.sampler``). Its
    ``step`` is the buffer ``switch_step``, so schedules resume with checkpoints. The wrapped
    network is ``self.network``: that is what a run exports (:func:`modalink.hub.save_pretrained`).
    """

    def __init__(self, net: nn.Module, inputs: str, multilabel: bool = False, aux_weight: float = 0.0,
                 sampler: ModalitySampler | None = None) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise InputError(f"inputs={inputs!r}; use one of {', '.join(INPUTS)}")
        if sampler is not None and inputs != "embeddings":
            raise InputError("a modality sampler here needs inputs='embeddings' (image classifiers "
                             "sample inside the network: set net.sampler)")
        self.network, self.inputs, self.multilabel = net, inputs, bool(multilabel)
        self.aux_weight = float(aux_weight)
        self.sampler = sampler
        if inputs == "embeddings":
            self.register_buffer("switch_step", torch.zeros((), dtype=torch.long))

    def run(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The network's outputs for a batch (modality sampling only in train mode)."""
        # one call for every network: net({modality: tensor}, {modality: availability})
        if self.inputs in ("text_image", "text_vector"):
            text = "text_image" if self.inputs == "text_image" else "text"
            inputs = {"image": batch["image"], text: batch["text_image" if text == "text_image" else "text_vec"]}
            return self.network(inputs, {"image": batch["has_image"], text: batch["has_text"]})
        keep = torch.stack([batch["has_image"].bool(), batch["has_text"].bool()], dim=1)
        if self.training and self.sampler is not None:
            keep = self.sampler(keep, int(self.switch_step))
            self.switch_step += 1
        present = {m: keep[:, j] for j, m in enumerate(MODALITIES)}
        return self.network({m: batch[m] for m in MODALITIES}, present)

    @staticmethod
    def _kept(out: Mapping[str, torch.Tensor], j: int, modality: str) -> torch.Tensor:
        """Rows that kept ``modality`` (after modality sampling), as the network reports them."""
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
