"""Image classifiers on a timm backbone: plain, Chameleon (text as image) and a multi-branch baseline.

* :class:`TimmBackbone` — a timm network without its classifier that takes pixels in [0, 1]
  (float) or 0–255 (uint8) and applies its own mean/std normalisation (from the weights'
  pretrained config, see :mod:`modalink.encoders.image`). Weights: ``pretrained=False`` is
  random and never touches disk or network; ``weights=FILE`` loads a local file; otherwise the
  local caches, then the hub (unless offline).
* :class:`ImageClassifier` — backbone → dropout → linear head.
* :class:`ChameleonClassifier` (Chameleon, arXiv 2407.16243) — ONE backbone reads the photo
  and the text rendered as an image (:class:`modalink.text.render.TextToImage`):

  - ``mode="joint"``: photo and text image go through the same network (in one batch, so
    BatchNorm statistics cover both); the per-sample mean of the features of the *available*
    inputs feeds a linear head (with a linear head this equals the mean of the two logits).
    Missing text → the photo alone; missing image → the text image alone.
  - ``mode="fused"``: the text image is a band (``band_height × W``) painted over the bottom of
    the photo, one image per sample; a missing modality is left blank (zeros).

  Training-time modality dropout (``drop_text``, ``drop_image``: a
  :class:`modalink.models.modality_sampling.DropSampler`) hides one modality of a complete
  sample with the given probabilities, so each input alone stays informative.
* :class:`MultiBranchClassifier` — the usual baseline: an image network (its own backbone) and
  a text network (an MLP over a text vector, e.g. mean word vectors or hashed bag of words)
  fused late by :class:`modalink.models.late_fusion.LateFusion`. A missing modality enters as a
  zero vector, which is what collapses such models when text is missing at test time.

All classifiers return ``{"logits", "embedding", ...}``; :func:`classification_loss` is the
matching objective (cross-entropy, or BCE-with-logits for multi-label targets).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from modalink.errors import InputError
from modalink.models.late_fusion import LateFusion
from modalink.models.modality_sampling import DropSampler
from modalink.models.registry import register_model

__all__ = ["TimmBackbone", "ImageClassifier", "ChameleonClassifier", "MultiBranchClassifier",
           "classification_loss", "drop_sampler"]

INPUT_ORDER = ("image", "text")  # the columns of the classifiers' availability matrix


class TimmBackbone(nn.Module):
    """A timm network (classifier removed) that normalises its own input.

    Args:
        name: timm architecture, e.g. ``resnet50``, ``vit_base_patch16_224``, ``test_resnet``.
        pretrained: load pretrained weights (``weights`` file → local caches → hub unless offline).
        weights: explicit local weights file (implies ``pretrained``).
        offline: forbid downloads (default: ``MODALINK_OFFLINE``/``HF_HUB_OFFLINE``).
        weights_option: the caller's setting that points at a weights file (e.g.
            ``chameleon.weights``), named in the message when the weights are missing.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``img_size=64`` for ViTs,
            ``drop_path_rate``).

    ``forward(x)``: ``x`` is ``B×3×H×W`` uint8 (0–255) or float in [0, 1]; returns
    ``B×num_features`` pooled features.
    """

    def __init__(self, name: str = "resnet18", pretrained: bool = False,
                 weights: str | os.PathLike | None = None, offline: bool | None = None,
                 weights_option: str | None = None, **timm_kwargs: Any) -> None:
        super().__init__()
        from modalink.encoders import create_encoder

        enc = create_encoder(f"timm/{name}", pretrained=pretrained, weights=weights, offline=offline,
                             weights_option=weights_option, **timm_kwargs)
        self.name = name
        self.net = enc.backbone
        self.contract = enc.contract
        self.num_features = int(enc.contract.output_dim)
        self.weights_path = getattr(enc, "weights_path", None)
        self.register_buffer("mean", torch.tensor(enc.contract.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(enc.contract.std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 0–255 or float [0, 1] pixels → the backbone's normalised input."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: images must be B×3×H×W, got shape {tuple(x.shape)}")
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Cross-entropy for (B,) class ids; BCE-with-logits for (B, L) 0/1 multi-label targets."""
    if multilabel:
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label targets of shape {tuple(labels.shape)} do not match logits "
                             f"{tuple(logits.shape)}")
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    if labels.ndim != 1:
        raise ValueError(f"class-id targets must be 1-D, got shape {tuple(labels.shape)} "
                         "(multi-label data needs multilabel=True)")
    return F.cross_entropy(logits, labels.long())


def _mask(m: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    if m is None:
        return torch.ones(batch, dtype=torch.bool, device=device)
    m = m.to(device=device).bool().reshape(-1)
    if m.shape[0] != batch:
        raise ValueError(f"modality mask has {m.shape[0]} entries for a batch of {batch}")
    return m


def _mapping_inputs(first: Any, second: Any, has_image: Any, has_text: Any, text_key: str) -> tuple:
    """Accept the call every modalink model takes — ``model({"image": ..., text_key: ...},
    present)`` with ``present`` a mapping of (B,) availability masks — besides the positional form."""
    if not isinstance(first, Mapping):
        return first, second, has_image, has_text
    present = second if isinstance(second, Mapping) else {}
    return (first.get("image"), first.get(text_key), present.get("image", has_image),
            present.get(text_key, has_text))


def _input_masks(model: nn.Module, image: torch.Tensor | None, text: torch.Tensor | None,
                 has_image: torch.Tensor | None, has_text: torch.Tensor | None, text_what: str
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) availability masks of a two-input classifier: a ``None`` input is absent for every row;
    in training, what the model's ``sampler`` keeps (columns image, text)."""
    ref = image if image is not None else text
    if ref is None:
        raise ValueError(f"{type(model).__name__} needs the photo, {text_what} or both")
    b, dev = ref.shape[0], ref.device
    m_img = _mask(has_image, b, dev) if image is not None else torch.zeros(b, dtype=torch.bool, device=dev)
    m_txt = _mask(has_text, b, dev) if text is not None else torch.zeros(b, dtype=torch.bool, device=dev)
    if model.training:
        keep = model.sampler(torch.stack([m_img, m_txt], dim=1))
        m_img, m_txt = keep[:, 0].contiguous(), keep[:, 1].contiguous()
    return m_img, m_txt


def drop_sampler(drop_text: float, drop_image: float) -> DropSampler:
    """The classifiers' modality dropout: hide the text (probability ``drop_text``) or the image
    (``drop_image``) of complete samples; exclusive events, the text interval first."""
    return DropSampler({"text": drop_text, "image": drop_image}, INPUT_ORDER)


class ImageClassifier(nn.Module):
    """timm backbone → dropout → linear head. ``forward(image) -> {"logits", "embedding"}``."""

    def __init__(self, num_classes: int, backbone: str = "resnet18", pretrained: bool = False,
                 weights: str | os.PathLike | None = None, offline: bool | None = None,
                 dropout: float = 0.0, **timm_kwargs: Any) -> None:
        super().__init__()
        if num_classes <= 0:
            raise InputError(f"num_classes must be positive, got {num_classes}")
        self.backbone = TimmBackbone(backbone, pretrained, weights, offline, **timm_kwargs)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.backbone(image)
        return {"logits": self.head(self.drop(f)), "embedding": F.normalize(f, dim=1)}

    def embed(self, image: torch.Tensor, modality: str | None = "image") -> torch.Tensor:
        """L2-normalised backbone features."""
        return F.normalize(self.backbone(image), dim=1)


class ChameleonClassifier(nn.Module):
    """One visual network for the photo and the text image (see the module docstring).

    Args:
        num_classes: output size (labels for multi-label data).
        backbone: timm architecture; ``pretrained``/``weights``/``offline`` as in :class:`TimmBackbone`.
        mode: ``joint`` (two images, same network) or ``fused`` (text band painted on the photo).
        band_height: rows of the text band in ``fused`` mode (must match the text images given).
        drop_text, drop_image: training-time modality dropout probabilities.
        dropout: dropout before the head.

    Training-time sampling is ``self.sampler`` (:func:`drop_sampler` of ``drop_text`` and
    ``drop_image``; columns image, text); a trainer may install another
    :class:`~modalink.models.modality_sampling.ModalitySampler` there.
    """

    def __init__(self, num_classes: int, backbone: str = "resnet18", pretrained: bool = False,
                 weights: str | os.PathLike | None = None, offline: bool | None = None,
                 mode: str = "joint", band_height: int | None = None, drop_text: float = 0.0,
                 drop_image: float = 0.0, dropout: float = 0.0, **timm_kwargs: Any) -> None:
        super().__init__()
        if mode not in ("joint", "fused"):
            raise InputError(f"mode must be 'joint' or 'fused', got {mode!r}")
        if num_classes <= 0:
            raise InputError(f"num_classes must be positive, got {num_classes}")
        self.sampler = drop_sampler(drop_text, drop_image)
        self.mode = mode
        self.band_height = band_height
        self.backbone = TimmBackbone(backbone, pretrained, weights, offline, **timm_kwargs)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    @staticmethod
    def _as_float(x: torch.Tensor) -> torch.Tensor:
        return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()

    def fuse(self, image: torch.Tensor | None, text_image: torch.Tensor | None,
             has_image: torch.Tensor, has_text: torch.Tensor) -> torch.Tensor:
        """Photo (blank where missing) with its bottom rows replaced by the text band (blank
        where text is missing); float pixels in [0, 1]."""
        ref = image if image is not None else text_image
        assert ref is not None
        b = ref.shape[0]
        if image is None:
            raise ValueError("fused mode needs the photo tensor (blank rows for missing images)")
        out = self._as_float(image) * has_image.view(b, 1, 1, 1).float()
        h, w = out.shape[-2:]
        if text_image is None:
            out[:, :, h - (self.band_height or h // 4):, :] = 0.0
            return out
        bh, bw = text_image.shape[-2:]
        if bw != w or bh > h or (self.band_height is not None and bh != self.band_height):
            raise ValueError(f"fused mode: text band {bh}x{bw} does not fit photos {h}x{w}"
                             f" (band_height={self.band_height})")
        out[:, :, h - bh:, :] = self._as_float(text_image) * has_text.view(b, 1, 1, 1).float()
        return out

    def forward(self, image: torch.Tensor | None = None, text_image: torch.Tensor | None = None,
                has_image: torch.Tensor | None = None, has_text: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """``image``: B×3×H×W photos; ``text_image``: B×3×h×w text images (``None`` = all missing);
        ``has_*``: (B,) bool masks (default: present when the tensor is given).

        Returns ``logits``, ``embedding`` and the masks actually used (``has_image``,
        ``has_text``, after training-time modality dropout).
        """
        image, text_image, has_image, has_text = _mapping_inputs(image, text_image, has_image, has_text, "text_image")
        m_img, m_txt = _input_masks(self, image, text_image, has_image, has_text, "the text image")
        out: dict[str, torch.Tensor] = {"has_image": m_img, "has_text": m_txt}
        if self.mode == "fused":
            feats = self.backbone(self.fuse(image, text_image, m_img, m_txt))
        else:
            feats, f_img, f_txt = self._joint_features(image, text_image, m_img, m_txt)
            out["logits_image"] = self.head(self.drop(f_img))  # rows without a photo: head bias only
            out["logits_text"] = self.head(self.drop(f_txt))
        out["logits"] = self.head(self.drop(feats))
        out["embedding"] = F.normalize(feats, dim=1)
        return out

    def _joint_features(self, image: torch.Tensor | None, text_image: torch.Tensor | None,
                        m_img: torch.Tensor, m_txt: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean of the backbone features of each sample's available inputs, photo features,
        text-image features); zeros where an input is absent."""
        b = m_img.shape[0]
        inputs = [(k, x, m) for k, x, m in (("image", image, m_img), ("text", text_image, m_txt))
                  if x is not None and bool(m.any())]
        if not inputs:  # nothing present anywhere: the head's bias decides
            ref = image if image is not None else text_image
            assert ref is not None
            f = self.backbone(self._as_float(ref[:1]))
            z = f.new_zeros(b, f.shape[1]) + 0.0 * f.sum()
            return z, z, z
        sizes = {tuple(x.shape[-2:]) for _, x, _ in inputs}
        if len(sizes) > 1:
            raise ValueError(f"joint mode: photos and text images must have the same size, got {sorted(sizes)}")
        # one backbone call for every present input, so BatchNorm sees photos and text images together
        f = self.backbone(torch.cat([self._as_float(x[m]) for _, x, m in inputs], dim=0))
        per_input = {"image": f.new_zeros(b, f.shape[1]), "text": f.new_zeros(b, f.shape[1])}
        start = 0
        for k, _, m in inputs:
            rows = m.nonzero().flatten()
            per_input[k] = per_input[k].index_copy(0, rows, f[start:start + rows.numel()])
            start += rows.numel()
        f_img, f_txt = per_input["image"], per_input["text"]
        count = (m_img.float() + m_txt.float()).clamp_min(1.0).unsqueeze(1)
        return (f_img + f_txt) / count, f_img, f_txt

    def embed(self, x: torch.Tensor, modality: str | None = None) -> torch.Tensor:
        """L2-normalised features of photos or text images (the same network reads both)."""
        return F.normalize(self.backbone(x), dim=1)


class MultiBranchClassifier(nn.Module):
    """Image network + text network, late fusion (the multi-branch baseline).

    Args:
        num_classes: output size.
        text_dim: width of the text vectors (e.g. mean word vectors).
        backbone: timm architecture of the image network (``pretrained``/``weights``/``offline``).
        embed_dim: output width of each branch MLP (:class:`LateFusion`).
        hidden: hidden widths of each branch MLP.
        fusion: ``concat`` (a head over concatenated branch outputs) or ``mean`` (mean of
            per-branch logits).
        norm: ``batch``, ``layer`` or ``none`` in the branch MLPs.
        dropout: dropout inside the branch MLPs.
        drop_text, drop_image: training-time modality dropout (0 = the usual complete-data training).

    Training-time sampling is ``self.sampler`` (:func:`drop_sampler` of ``drop_text`` and
    ``drop_image``; columns image, text); a trainer may install another
    :class:`~modalink.models.modality_sampling.ModalitySampler` there.
    """

    def __init__(self, num_classes: int, text_dim: int, backbone: str = "resnet18",
                 pretrained: bool = False, weights: str | os.PathLike | None = None,
                 offline: bool | None = None, embed_dim: int = 256, hidden: Sequence[int] = (512,),
                 fusion: str = "concat", norm: str = "layer", dropout: float = 0.1,
                 drop_text: float = 0.0, drop_image: float = 0.0, **timm_kwargs: Any) -> None:
        super().__init__()
        if text_dim <= 0:
            raise InputError(f"text_dim must be positive, got {text_dim}")
        self.sampler = drop_sampler(drop_text, drop_image)
        self.backbone = TimmBackbone(backbone, pretrained, weights, offline, **timm_kwargs)
        self.text_dim = int(text_dim)
        self.fusion = LateFusion({"image": self.backbone.num_features, "text": self.text_dim},
                                 embed_dim=embed_dim, hidden=tuple(hidden), norm=norm, dropout=dropout,
                                 num_classes=num_classes, fusion=fusion)

    def forward(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None,
                has_image: torch.Tensor | None = None, has_text: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """``image``: B×3×H×W photos; ``text``: B×text_dim vectors; ``has_*`` (B,) bool masks.

        Every branch runs on every row (absent rows are zeroed), so all weights take part in
        every step (no unused parameters under DDP).
        """
        image, text, has_image, has_text = _mapping_inputs(image, text, has_image, has_text, "text")
        m_img, m_txt = _input_masks(self, image, text, has_image, has_text, "the text vector")
        b, dev = m_img.shape[0], m_img.device
        if image is not None:
            f_img = self.backbone(image)
        else:
            f_img = torch.zeros(b, self.backbone.num_features, device=dev)
        if text is None:
            text = torch.zeros(b, self.text_dim, device=dev)
        elif text.shape[-1] != self.text_dim:
            raise ValueError(f"text vectors have width {text.shape[-1]}, expected {self.text_dim}")
        out = self.fusion({"image": f_img, "text": text.float()}, {"image": m_img, "text": m_txt})
        out["has_image"], out["has_text"] = m_img, m_txt
        return out

    def embed(self, x: torch.Tensor, modality: str | None = None) -> torch.Tensor:
        """L2-normalised branch output of ``modality`` (``image``: photos, ``text``: vectors)."""
        if modality == "image":
            return self.fusion.embed(self.backbone(x), "image")
        if modality == "text":
            return self.fusion.embed(x.float(), "text")
        raise KeyError(f"modality must be 'image' or 'text', got {modality!r}")


@register_model("image_classifier")
def image_classifier(**kw: Any) -> ImageClassifier:
    """timm backbone + linear head; give ``num_classes`` (and ``backbone``)."""
    kw.setdefault("num_classes", 101)
    return ImageClassifier(**kw)


@register_model("chameleon")
def chameleon(**kw: Any) -> ChameleonClassifier:
    """Chameleon text-as-image classifier (one backbone for photo and text image)."""
    kw.setdefault("num_classes", 101)
    return ChameleonClassifier(**kw)


@register_model("multi_branch_classifier")
def multi_branch_classifier(**kw: Any) -> MultiBranchClassifier:
    """Image network + text MLP with late fusion (the multi-branch baseline)."""
    kw.setdefault("num_classes", 101)
    kw.setdefault("text_dim", 300)
    return MultiBranchClassifier(**kw)
