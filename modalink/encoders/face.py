"""Face encoder: facenet-pytorch MTCNN crops + InceptionResnetV1 (FaceNet) 512-D embeddings.

Preprocessing (from the contract): MTCNN finds the largest face, crops it square to 160×160
(bilinear), pixels are scaled to [0, 1] and normalised with mean 0.5, std 128/255 — exactly
facenet-pytorch's ``fixed_image_standardization`` ``(x − 127.5) / 128`` on 0–255 pixels.

When MTCNN finds no face (it returns ``None``) the ``no_face`` policy decides:
``"center_crop"`` (default) uses the central square of the image, resized — MAV-Celeb images
are already face-track crops, so this is a sensible fallback — and flags the item;
``"skip"`` drops the item (``preprocess`` raises :class:`NoFaceError`, ``preprocess_batch``
lists it in ``dropped``). Either way a batch never crashes and the counts are logged.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from modalink.encoders.base import (
    Encoder,
    EncoderBatch,
    EncoderContract,
    NoFaceError,
    register_encoder,
    resolve_weights,
    torch_checkpoint_dirs,
    weights_cache_dir,
)
from modalink.errors import InputError
from modalink.io import load_state_dict

log = logging.getLogger(__name__)

NoFacePolicy = Literal["skip", "center_crop"]
#: A face detector: list of RGB PIL images → per image a (3, S, S) float tensor of 0–255 pixels
#: (the aligned crop) or ``None`` when no face was found.
FaceDetector = Callable[[Sequence[Image.Image]], Sequence["torch.Tensor | None"]]

FACENET_WEIGHTS = {
    "vggface2": (
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        "InceptionResnetV1 trained on VGGFace2 (facenet-pytorch port of davidsandberg/facenet 20180402-114759)",
    ),
    "casia-webface": (
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180408-102900-casia-webface.pt",
        "InceptionResnetV1 trained on CASIA-WebFace (facenet-pytorch port of davidsandberg/facenet 20180408-102900)",
    ),
}

FACE_IMAGE_SIZE = 160


def facenet_contract(dataset: str, image_size: int = FACE_IMAGE_SIZE) -> EncoderContract:
    """The input/output contract of facenet-pytorch's InceptionResnetV1 (``dataset`` weights).

    ``image_size`` other than 160 is possible (the network pools adaptively) but the weights were
    trained on 160 px crops; smaller sizes are for fast tests.
    """
    url, desc = FACENET_WEIGHTS[dataset]
    return EncoderContract(
        name=f"facenet_{dataset.replace('-', '_')}",
        modality="face",
        input_kind="image",
        output_dim=512,
        l2_normalized=True,
        weight_source=desc,
        weight_url=url,
        licence="code MIT (facenet-pytorch); weights from davidsandberg/facenet (MIT), trained on "
                f"{'VGGFace2' if dataset == 'vggface2' else 'CASIA-WebFace'} — check the dataset's terms",
        image_size=(image_size, image_size),
        mean=(0.5, 0.5, 0.5),
        std=(128.0 / 255.0,) * 3,
        interpolation="bilinear",
        crop_pct=1.0,
        notes="MTCNN face crop (largest face, margin 0); no-face policy center_crop|skip",
    )


class MTCNNDetector:
    """facenet-pytorch MTCNN as a :data:`FaceDetector` (its P/R/O-net weights ship with the package).

    Detection is batched: same-size images go through MTCNN's three networks together (its
    ``detect_face``), then the face of each image is selected and cropped on its own with MTCNN's
    own ``select_boxes`` and ``extract``, so every crop equals the one ``mtcnn(image)`` gives for
    the image alone. (facenet-pytorch's batched ``mtcnn(images)`` call crashes in
    ``select_boxes`` with "inhomogeneous shape" when a batch mixes images with and without a
    face — an open upstream bug; this class never calls it.) Images of different sizes are
    detected in same-size groups (MTCNN batches need equal sizes); images smaller than
    ``min_face_size`` cannot hold a detectable face and are reported as no face.
    """

    def __init__(self, image_size: int = FACE_IMAGE_SIZE, margin: int = 0, min_face_size: int = 20,
                 device: str | torch.device | None = None) -> None:
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(image_size=image_size, margin=margin, min_face_size=min_face_size,
                           post_process=False, select_largest=True, keep_all=False, device=device)
        self.mtcnn.eval()

    def to(self, device: str | torch.device) -> "MTCNNDetector":
        self.mtcnn.to(device)
        self.mtcnn.device = torch.device(device)
        return self

    def __call__(self, images: Sequence[Image.Image]) -> list[torch.Tensor | None]:
        out: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.size, []).append(i)
        for size, idx in groups.items():
            if min(size) < self.mtcnn.min_face_size:
                continue  # MTCNN's image pyramid would be empty (and its detect_face crash)
            for i, crop in zip(idx, self._detect_group([images[i] for i in idx])):
                out[i] = crop
        return out

    def _detect_group(self, group: list[Image.Image]) -> list[torch.Tensor | None]:
        """Batched detection of same-size images, then per-image selection and crop."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        m = self.mtcnn
        try:
            with torch.no_grad():
                all_boxes, all_points = detect_face(group, m.min_face_size, m.pnet, m.rnet, m.onet,
                                                    m.thresholds, m.factor, m.device)
        except Exception as e:  # noqa: BLE001 - one odd image must not sink the batch
            if len(group) == 1:
                log.warning("MTCNN failed on a %dx%d image (%s: %s); treated as no face",
                            *group[0].size, type(e).__name__, e)
                return [None]
            return [crop for im in group for crop in self._detect_group([im])]
        return [self._select_and_crop(im, boxes, points) for im, boxes, points in zip(group, all_boxes, all_points)]

    def _select_and_crop(self, image: Image.Image, boxes: Any, points: Any) -> torch.Tensor | None:
        """One image's detections (rows ``x1, y1, x2, y2, prob``) → its crop, as ``mtcnn(image)`` does."""
        m = self.mtcnn
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5)
        if len(boxes) == 0:
            return None
        points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)
        if m.select_largest:  # the order MTCNN.detect returns (largest first)
            order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
            boxes, points = boxes[order], points[order]
        box, _, _ = m.select_boxes(boxes[:, :4], boxes[:, 4], points, image, method=m.selection_method)
        if box is None:
            return None
        with torch.no_grad():
            face = m.extract(image, box, None)
        return face.float().cpu()


def center_crop_resize(image: Image.Image, size: int) -> torch.Tensor:
    """The central square of ``image`` resized to ``size``² (bilinear) → (3, size, size) 0–255 floats."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(crop, dtype=np.float32).copy()).permute(2, 0, 1)


class FaceEncoder(Encoder):
    """MTCNN (or an injected detector) + InceptionResnetV1 → L2-normalised 512-D embeddings."""

    def __init__(self, contract: EncoderContract, backbone: nn.Module | None = None,
                 detector: FaceDetector | None = None, no_face: NoFacePolicy = "center_crop",
                 margin: int = 0, min_face_size: int = 20) -> None:
        super().__init__()
        if no_face not in ("skip", "center_crop"):
            raise InputError(f"no_face must be 'skip' or 'center_crop', got {no_face!r}")
        if backbone is None:
            from facenet_pytorch import InceptionResnetV1

            backbone = InceptionResnetV1(pretrained=None, classify=False)
        self.contract = contract
        self.backbone = backbone
        self.no_face = no_face
        self._margin, self._min_face_size = margin, min_face_size
        self._detector = detector
        self.no_face_count = 0  # running count over this encoder's lifetime
        size = contract.image_size
        assert size is not None and contract.mean is not None and contract.std is not None
        self.register_buffer("_mean", torch.tensor(contract.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("_std", torch.tensor(contract.std).view(1, 3, 1, 1) * 255.0, persistent=False)

    @property
    def detector(self) -> FaceDetector:
        """The face detector; MTCNN is built on first use (weights bundled with facenet-pytorch)."""
        if self._detector is None:
            size = self.contract.image_size[0]  # type: ignore[index]
            self._detector = MTCNNDetector(size, self._margin, self._min_face_size, device=self.device)
        elif isinstance(self._detector, MTCNNDetector) and self._detector.mtcnn.device != self.device:
            self._detector.to(self.device)
        return self._detector

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) 0–255 pixels → normalised input, using the contract's mean/std."""
        return (pixels.to(self._mean.device) - self._mean) / self._std

    def crop_faces(self, images: Sequence[Image.Image]) -> tuple[list[torch.Tensor | None], list[bool]]:
        """Detect and crop faces → (0–255 crops or None under the skip policy, found flags)."""
        images = [im.convert("RGB") for im in images]
        size = self.contract.image_size[0]  # type: ignore[index]
        crops = list(self.detector(images))
        if len(crops) != len(images):
            raise RuntimeError(f"face detector returned {len(crops)} results for {len(images)} images")
        found = [c is not None for c in crops]
        for i, c in enumerate(crops):
            if c is None:
                self.no_face_count += 1
                if self.no_face == "center_crop":
                    crops[i] = center_crop_resize(images[i], size)
            elif tuple(c.shape) != (3, size, size):
                raise RuntimeError(f"face detector returned shape {tuple(c.shape)}, expected (3, {size}, {size})")
        return crops, found

    def preprocess(self, raw: Image.Image) -> torch.Tensor:
        """One PIL image → (3, 160, 160) normalised face; :class:`NoFaceError` under ``skip``."""
        crops, found = self.crop_faces([raw])
        if crops[0] is None:
            raise NoFaceError("no face detected")
        if not found[0]:
            log.info("no face detected; using a centre crop")
        return self.normalize(crops[0].unsqueeze(0))[0]

    def preprocess_batch(self, raws: Sequence[Image.Image]) -> EncoderBatch:
        """PIL images → :class:`EncoderBatch`; no-face items are ``flagged`` (centre crop) or ``dropped``."""
        crops, found = self.crop_faces(raws)
        kept = [i for i, c in enumerate(crops) if c is not None]
        dropped = {i: NoFaceError.reason for i, c in enumerate(crops) if c is None}
        flagged = {i: NoFaceError.reason for i in kept if not found[i]}
        if dropped or flagged:
            log.debug("no face in %d of %d images (%s)", len(dropped) + len(flagged), len(raws), self.no_face)
        if not kept:
            return EncoderBatch(None, [], None, dropped, flagged)
        inputs = self.normalize(torch.stack([crops[i] for i in kept]))  # type: ignore[misc]
        return EncoderBatch(inputs, kept, None, dropped, flagged)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 160, 160) normalised faces → (B, 512) L2-normalised embeddings."""
        return self.backbone(x)


def load_facenet_state_dict(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a facenet-pytorch checkpoint (the release ``.pt`` file) into an InceptionResnetV1.

    The release files include the training classifier (``logits.*``, 8631 or 10575 classes);
    it is dropped, everything else must match exactly.
    """
    state = load_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("logits.")]
    if missing or unexpected:
        raise InputError(f"{path}: not an InceptionResnetV1 state dict (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")


def _probe_url(url: str) -> str | None:
    from modalink.encoders.image import probe_url

    return probe_url(url)


def _build_facenet(dataset: str, pretrained: bool, weights: str | os.PathLike | None,
                   offline: bool | None, no_face: NoFacePolicy = "center_crop",
                   detector: FaceDetector | None = None, margin: int = 0, min_face_size: int = 20,
                   dropout_prob: float = 0.6, image_size: int = FACE_IMAGE_SIZE,
                   weights_option: str | None = None, **kwargs: Any) -> FaceEncoder:
    if kwargs:
        raise TypeError(f"facenet encoder: unexpected arguments {sorted(kwargs)}")
    if image_size < 80:
        raise InputError(f"facenet encoder: image_size must be at least 80 px, got {image_size}")
    from facenet_pytorch import InceptionResnetV1

    contract = facenet_contract(dataset, image_size)
    path: Path | None = None
    if pretrained:  # find the weights before building anything, so a missing file fails fast
        url = contract.weight_url
        assert url is not None
        filename = os.path.basename(url)
        cache = weights_cache_dir(contract.name) / filename

        def download() -> Path:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cache), progress=True)
            return cache

        path = resolve_weights(
            contract.name, weights=weights,
            candidates=[cache, *(d / filename for d in torch_checkpoint_dirs())],
            offline=offline, download=download, filename=filename, url=url, weights_option=weights_option,
            probe=lambda: _probe_url(url),
        )
    backbone = InceptionResnetV1(pretrained=None, classify=False, dropout_prob=dropout_prob)
    if path is not None:
        load_facenet_state_dict(backbone, path)
        log.info("%s: loaded weights from %s", contract.name, path)
    enc = FaceEncoder(contract, backbone, detector=detector, no_face=no_face, margin=margin,
                      min_face_size=min_face_size)
    enc.weights_path = None if path is None else str(path)
    return enc


@register_encoder("facenet_vggface2")
def facenet_vggface2(pretrained: bool = False, weights: str | os.PathLike | None = None,
                     offline: bool | None = None, **kwargs: Any) -> FaceEncoder:
    """FaceNet InceptionResnetV1 (VGGFace2 weights), 512-D, MTCNN crops at 160 px.

    Keyword arguments: ``no_face`` ("center_crop" | "skip"), ``detector`` (a callable replacing
    MTCNN), ``margin``, ``min_face_size``, ``dropout_prob``, ``image_size`` (default 160),
    ``weights_option`` (the calling program's setting for ``weights``, named when they are missing).
    """
    return _build_facenet("vggface2", pretrained, weights, offline, **kwargs)


@register_encoder("facenet_casia_webface")
def facenet_casia_webface(pretrained: bool = False, weights: str | os.PathLike | None = None,
                          offline: bool | None = None, **kwargs: Any) -> FaceEncoder:
    """FaceNet InceptionResnetV1 (CASIA-WebFace weights), 512-D, MTCNN crops at 160 px."""
    return _build_facenet("casia-webface", pretrained, weights, offline, **kwargs)
