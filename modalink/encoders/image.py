"""Image encoder: any timm backbone without its classifier (``num_classes=0``) → pooled features.

The contract comes from the weights' own pretrained config (``timm.data.resolve_data_config``):
input size, interpolation, crop fraction, mean/std. ``preprocess`` is timm's eval transform
built from those values (resize, centre crop, to tensor, normalise).

Weights: ``weights=FILE`` (``.safetensors``/``.pth``/``.bin``) is loaded through
``pretrained_cfg_overlay=dict(file=...)``; otherwise ``$MODALINK_HOME/weights/timm/<arch>/``,
the Hugging Face cache and the torch hub cache are searched before timm downloads. Offline, or
when the server does not answer a single quick probe (:func:`probe_hub_file`, a few seconds at
most, instead of ``hf_hub_download``'s minute of retries), a :class:`WeightsNotFoundError` names
the missing file, where to put it and the setting that points at a file
(:func:`modalink.encoders.base.missing_weights_text`; ``weights_option`` names that setting for
the calling program).
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
    WeightsNotFoundError,
    hf_cached_file,
    missing_weights_text,
    register_encoder,
    resolve_weights,
    torch_checkpoint_dirs,
    weights_cache_dir,
)
from modalink.errors import UnknownNameError

log = logging.getLogger(__name__)

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
    """Where a local copy of ``model_name``'s weights is looked for, in order: the modalink cache
    (``<home>/weights/timm/<arch>/<file>``), the Hugging Face hub cache, the torch hub cache."""
    pcfg = _pretrained_cfg(model_name)
    names = list(_WEIGHT_FILES)
    if pcfg is not None and pcfg.hf_hub_filename and pcfg.hf_hub_filename not in names:
        names.insert(0, pcfg.hf_hub_filename)
    cands: list[Path | None] = [weights_cache_dir("timm") / model_name / f for f in names]
    if pcfg is not None:
        if pcfg.hf_hub_id:
            hub_names = [pcfg.hf_hub_filename] if pcfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            cands += [hf_cached_file(pcfg.hf_hub_id, n) for n in hub_names]
        if pcfg.url:
            cands += [d / os.path.basename(pcfg.url) for d in torch_checkpoint_dirs()]
    return cands


def _pretrained_cfg(model_name: str) -> Any:
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(model_name, allow_unregistered=False)
    except Exception:  # noqa: BLE001 - an unknown tag: only the modalink cache applies
        return None


# ----------------------------------------------------------------------------- missing weights
#: Seconds to wait for the weights' server before calling it unreachable (``MODALINK_HUB_TIMEOUT``).
HUB_PROBE_TIMEOUT_S = 5.0


def _probe_timeout() -> float:
    try:
        return float(os.environ.get("MODALINK_HUB_TIMEOUT", HUB_PROBE_TIMEOUT_S))
    except ValueError:
        return HUB_PROBE_TIMEOUT_S


def probe_hub_file(repo_id: str, filename: str, timeout: float | None = None) -> str | None:
    """``None`` when ``filename`` of Hugging Face repo ``repo_id`` can be reached, else why not.

    One HEAD request, no retries, ``timeout`` seconds at most (default :data:`HUB_PROBE_TIMEOUT_S`,
    env ``MODALINK_HUB_TIMEOUT``): without a network this answers in well under a second instead
    of the minute of retries ``hf_hub_download`` spends before failing.
    """
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return "huggingface_hub is not installed"
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=_probe_timeout() if timeout is None else timeout)
    except Exception as e:  # noqa: BLE001 - network errors come in many types
        return _short_error(e)
    return None


def probe_url(url: str, timeout: float | None = None) -> str | None:
    """``None`` when ``url`` answers a HEAD request within ``timeout`` seconds, else why not."""
    import urllib.request

    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=_probe_timeout() if timeout is None else timeout):
            pass
    except Exception as e:  # noqa: BLE001
        return _short_error(e)
    return None


def _short_error(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _is_download_error(e: BaseException) -> bool:
    """An error raised while fetching weights (network, hub, cache), not a bad model argument."""
    mod = type(e).__module__.split(".")[0]
    return isinstance(e, (OSError, ConnectionError, TimeoutError)) or mod in {
        "huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"}


def _remote_file(model_name: str) -> tuple[str, str | None, str | None]:
    """(file name, Hugging Face repo id or None, download URL or None) of the weights timm fetches."""
    pcfg = _pretrained_cfg(model_name)
    if pcfg is None:
        return "model.safetensors", None, None
    if pcfg.hf_hub_id:
        name = pcfg.hf_hub_filename or "model.safetensors"
        return name, pcfg.hf_hub_id, f"https://huggingface.co/{pcfg.hf_hub_id}/blob/main/{name}"
    if pcfg.url:
        return os.path.basename(pcfg.url), None, pcfg.url
    return "model.safetensors", None, None


def hf_hub_cache_dir() -> str:
    """The Hugging Face hub cache folder, from the environment as it is now (``HF_HUB_CACHE``,
    else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return str(Path(os.environ["HF_HUB_CACHE"]).expanduser())
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    return str(Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "huggingface" / "hub")


def _weights_help(model_name: str, weights_option: str | None) -> dict[str, Any]:
    """Arguments of :func:`resolve_weights` / :func:`missing_weights_text` for timm's ``model_name``."""
    filename, hub_id, url = _remote_file(model_name)
    opt = weights_option or "weights"
    pre = opt[: -len("weights")] + "pretrained" if opt.endswith("weights") else "pretrained"
    extra = []
    if hub_id:
        extra.append(f"or put it in the Hugging Face cache {hf_hub_cache_dir()} (`hf download {hub_id} {filename}` "
                     "on a machine with network, then copy that cache folder here)")
    extra.append(f"or use random weights: {pre}=false")
    return {"filename": filename, "url": url, "weights_option": opt, "extra": extra}


def _probe_source(model_name: str) -> str | None:
    """``None`` when the server timm downloads ``model_name``'s weights from answers, else why not."""
    filename, hub_id, url = _remote_file(model_name)
    if hub_id:
        return probe_hub_file(hub_id, filename)
    if url:
        return probe_url(url)
    return "timm knows no download source for this architecture"


def _find_timm_weights(model_name: str, weights: str | os.PathLike | None, offline: bool | None,
                       weights_option: str | None) -> Path | None:
    """The local weights file to load, or ``None`` when timm may download them (online, source reachable).

    Explicit file → ``$MODALINK_HOME/weights/timm/<arch>/`` → Hugging Face cache → torch hub cache;
    then, offline or when the source does not answer one quick probe, :class:`WeightsNotFoundError`
    (:func:`modalink.encoders.base.missing_weights_text`: the file, where to put it, the setting).
    """
    local = resolve_weights(
        f"timm/{model_name}", weights=weights, candidates=_local_timm_weights(model_name), offline=offline,
        download=lambda: None,  # reachable: timm downloads into its own cache (see timm_image)
        probe=lambda: _probe_source(model_name), **_weights_help(model_name, weights_option))
    return Path(local) if local is not None else None


def check_timm_architecture(model_name: str) -> None:
    """Raise :class:`~modalink.errors.UnknownNameError` (with the closest names) unless timm knows
    the architecture ``model_name`` (a pretrained tag such as ``.openai`` is allowed)."""
    import timm

    if not timm.is_model(model_name):
        import difflib

        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'timm/{c}' for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown timm architecture {model_name!r} (in 'timm/{model_name}'){hint}; "
                               "timm.list_models() lists the known ones")


@register_encoder("timm")
def timm_image(model_name: str = "resnet50", pretrained: bool = False,
               weights: str | os.PathLike | None = None, offline: bool | None = None,
               weights_option: str | None = None, **kwargs: Any) -> ImageEncoder:
    """Any timm architecture as an image encoder; use ``create_encoder("timm/<arch>")``.

    ``weights_option`` names the setting that points at a weights file in the calling program
    (e.g. ``"image_encoder.weights"``, ``"chameleon.weights"``); error messages tell the user to set
    it. Extra keyword arguments go to ``timm.create_model`` (e.g. ``img_size`` for ViTs).
    """
    import timm

    check_timm_architecture(model_name)
    kwargs = {**kwargs, "num_classes": 0}
    local: Path | None = None
    if not pretrained:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
    else:
        local = _find_timm_weights(model_name, weights, offline, weights_option)
        if local is not None:
            model = timm.create_model(model_name, pretrained=True,
                                      pretrained_cfg_overlay=dict(file=str(local)), **kwargs)
            log.info("timm/%s: loaded weights from %s", model_name, local)
        else:
            try:
                model = timm.create_model(model_name, pretrained=True, **kwargs)
            except Exception as e:  # noqa: BLE001 - the download failed after the probe succeeded
                if not _is_download_error(e):
                    raise
                searched = [Path(c) for c in _local_timm_weights(model_name) if c is not None]
                raise WeightsNotFoundError(missing_weights_text(
                    f"timm/{model_name}", f"the download failed ({_short_error(e)})",
                    put_at=searched[0], searched=searched, **_weights_help(model_name, weights_option))) from e
    enc = ImageEncoder(model, timm_contract(model, model_name))
    if pretrained:
        enc.weights_path = str(local) if local is not None else f"timm:{model_name}"
    return enc
