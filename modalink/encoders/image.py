"""Image encoder: any timm backbone without its classifier (``num_classes=0``) → pooled features.

The contract comes from the weights' own pretrained config (``timm.data.resolve_data_config``):
input size, interpolation, crop fraction, mean/std. ``preprocess`` is timm's eval transform
built from those values (resize, centre crop, to tensor, normalise).

Weights: ``weights=FILE`` (``.safetensors``/``.pth``/``.bin``) is loaded through
``pretrained_cfg_overlay=dict(file=...)``; otherwise ``$MODALINK_HOME/weights/timm/<arch>/``,
the Hugging Face cache and the torch hub cache are searched before timm downloads.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from PIL import Image

from modalink.encoders.base import (
    Encoder,
    EncoderContract,
    hf_cached_file,
    is_offline,
    register_encoder,
    resolve_weights,
    torch_checkpoint_dirs,
    weights_cache_dir,
)

log = logging.getLogger("modalink.encoders.image")

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.pth", "weights.pth")


def timm_contract(model: nn.Module, model_name: str) -> EncoderContract:
    """Contract of a timm model from its pretrained config (``resolve_data_config``)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    pcfg = getattr(model, "pretrained_cfg", {}) or {}
    _, h, w = cfg["input_size"]
    out_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    hub = pcfg.get("hf_hub_id")
    return EncoderContract(
        name=f"timm/{model_name}",
        modality="image",
        input_kind="image",
        output_dim=out_dim,
        l2_normalized=False,
        weight_source=f"timm pretrained weights for {model_name}"
                      + (f" (Hugging Face {hub})" if hub else ""),
        weight_url=(f"https://huggingface.co/{hub}" if hub else pcfg.get("url")) or None,
        licence=str(pcfg.get("license") or "see the model card"),
        image_size=(int(h), int(w)),
        mean=tuple(float(x) for x in cfg["mean"]),
        std=tuple(float(x) for x in cfg["std"]),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_pct=float(cfg.get("crop_pct", 1.0)),
        notes=f"crop_mode={cfg.get('crop_mode', 'center')}",
    )


class ImageEncoder(Encoder):
    """A timm backbone (classifier removed) with timm's eval preprocessing."""

    def __init__(self, backbone: nn.Module, contract: EncoderContract) -> None:
        super().__init__()
        from timm.data import create_transform

        self.backbone = backbone
        self.contract = contract
        self.transform = create_transform(
            input_size=(3, *contract.image_size),  # type: ignore[misc]
            interpolation=contract.interpolation, mean=contract.mean, std=contract.std,
            crop_pct=contract.crop_pct, is_training=False,
        )

    def preprocess(self, raw: Image.Image) -> torch.Tensor:
        """PIL image → (3, H, W) normalised tensor (resize, centre crop, normalise)."""
        return self.transform(raw.convert("RGB"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, output_dim) pooled features."""
        return self.backbone(x)


def _local_timm_weights(model_name: str) -> list[Path | None]:
    from timm.models import get_pretrained_cfg

    cands: list[Path | None] = [weights_cache_dir("timm") / model_name / f for f in _WEIGHT_FILES]
    try:
        pcfg = get_pretrained_cfg(model_name, allow_unregistered=False)
    except Exception:  # noqa: BLE001 - an unknown tag: only the modalink cache applies
        pcfg = None
    if pcfg is not None:
        if pcfg.hf_hub_id:
            names = [pcfg.hf_hub_filename] if pcfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            cands += [hf_cached_file(pcfg.hf_hub_id, n) for n in names]
        if pcfg.url:
            cands += [d / os.path.basename(pcfg.url) for d in torch_checkpoint_dirs()]
    return cands


@register_encoder("timm")
def timm_image(model_name: str = "resnet50", pretrained: bool = False,
               weights: str | os.PathLike | None = None, offline: bool | None = None,
               **kwargs: Any) -> ImageEncoder:
    """Any timm architecture as an image encoder; use ``create_encoder("timm/<arch>")``.

    Extra keyword arguments go to ``timm.create_model`` (e.g. ``img_size`` for ViTs).
    """
    import timm

    kwargs = {**kwargs, "num_classes": 0}
    if not pretrained:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    else:
        local: Path | None
        try:
            local = resolve_weights(
                f"timm/{model_name}", weights=weights, candidates=_local_timm_weights(model_name),
                offline=True, download=None,
                hint=f"Download the weights of timm model {model_name!r} (e.g. model.safetensors from "
                     "its Hugging Face page) and put the file there.",
            )
        except FileNotFoundError:
            if weights is not None or is_offline(offline):
                raise
            local = None  # online: let timm download into its own cache
        if local is not None:
            model = timm.create_model(model_name, pretrained=True,
                                      pretrained_cfg_overlay=dict(file=str(local)), **kwargs)
            log.info("timm/%s: loaded weights from %s", model_name, local)
        else:
            model = timm.create_model(model_name, pretrained=True, **kwargs)
    enc = ImageEncoder(model, timm_contract(model, model_name))
    if pretrained:
        enc.weights_path = str(local) if local is not None else f"timm:{model_name}"
    return enc
