"""Voice encoder: SpeechBrain ECAPA-TDNN (spkrec-ecapa-voxceleb architecture), 192-D embeddings.

Front end (applied inside the encoder, as in SpeechBrain's ``EncoderClassifier.encode_batch``):
16 kHz waveform → 80-dim log-mel fbank (``speechbrain.lobes.features.Fbank(n_mels=80)``) →
per-utterance mean normalisation (``InputNormalization(norm_type="sentence", std_norm=False)``)
→ ECAPA-TDNN with channels [1024, 1024, 1024, 1024, 3072]. A padded batch carries relative
lengths, and each clip is embedded without its padding (clips of equal length together), so a
clip's embedding does not depend on the other clips of its batch.

Weights are read straight from ``embedding_model.ckpt`` (a plain state dict) in a local folder
with the Hugging Face ``speechbrain/spkrec-ecapa-voxceleb`` layout; the hparams file is not
used (it points at the hub even for local folders).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from modalink.audio import resample
from modalink.encoders.base import (
    Encoder,
    EncoderContract,
    PreprocessError,
    hf_cached_file,
    register_encoder,
    resolve_weights,
    weights_cache_dir,
)
from modalink.errors import InputError
from modalink.io import load_state_dict

log = logging.getLogger(__name__)

ECAPA_HUB_ID = "speechbrain/spkrec-ecapa-voxceleb"
ECAPA_CKPT = "embedding_model.ckpt"
ECAPA_ARCH = dict(channels=[1024, 1024, 1024, 1024, 3072], kernel_sizes=[5, 3, 3, 3, 1],
                  dilations=[1, 2, 3, 4, 1], attention_channels=128, lin_neurons=192)


class ShortAudioError(PreprocessError):
    """A waveform shorter than the encoder's minimum length."""

    reason = "too_short_audio"


def ecapa_contract(lin_neurons: int = 192) -> EncoderContract:
    """The input/output contract of the SpeechBrain ECAPA-TDNN VoxCeleb speaker model."""
    return EncoderContract(
        name="ecapa_voxceleb",
        modality="voice",
        input_kind="audio",
        output_dim=lin_neurons,
        l2_normalized=False,
        weight_source="SpeechBrain ECAPA-TDNN speaker-verification model trained on VoxCeleb 1+2 "
                      f"(Hugging Face {ECAPA_HUB_ID}, file {ECAPA_CKPT})",
        weight_url=f"https://huggingface.co/{ECAPA_HUB_ID}",
        licence="Apache-2.0 (SpeechBrain code and model card); trained on VoxCeleb — check its terms",
        sample_rate=16000,
        features="fbank n_mels=80 (25 ms window, 10 ms hop) + per-utterance mean normalisation",
        notes="mono float waveform in [-1, 1]; each clip embedded unpadded (batch-invariant)",
    )


class VoiceEncoder(Encoder):
    """Waveform → ECAPA-TDNN speaker embedding (not L2-normalised)."""

    def __init__(self, contract: EncoderContract, n_mels: int = 80, min_seconds: float = 0.05,
                 **ecapa_kwargs: Any) -> None:
        super().__init__()
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization

        self.contract = contract
        self.min_seconds = min_seconds
        self.compute_features = Fbank(n_mels=n_mels, sample_rate=contract.sample_rate)
        self.mean_norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.model = ECAPA_TDNN(n_mels, **ecapa_kwargs)

    def preprocess(self, raw: tuple[np.ndarray | torch.Tensor, int] | np.ndarray | torch.Tensor,
                   sample_rate: int | None = None) -> torch.Tensor:
        """Waveform (+ its rate) → 1-D float tensor at the contract's rate.

        Accepts ``preprocess(wave, sr)`` or ``preprocess((wave, sr))``; ``sr`` defaults to the
        contract's rate. Multi-channel input (frames, channels) is averaged to mono.
        """
        if isinstance(raw, tuple):
            raw, sample_rate = raw
        sr = int(sample_rate or self.contract.sample_rate)  # type: ignore[arg-type]
        wave = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        wave = wave.astype(np.float32, copy=False)
        if wave.ndim == 2:
            wave = wave.mean(axis=1)  # (frames, channels), as soundfile returns
        if wave.ndim != 1:
            raise PreprocessError(f"expected a 1-D waveform, got shape {wave.shape}")
        wave = resample(wave, sr, int(self.contract.sample_rate))  # type: ignore[arg-type]
        if wave.shape[0] < self.min_seconds * self.contract.sample_rate:  # type: ignore[operator]
            raise ShortAudioError(f"waveform of {wave.shape[0]} samples is shorter than {self.min_seconds} s")
        return torch.from_numpy(np.ascontiguousarray(wave))

    def collate(self, items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-pad 1-D waveforms to the longest → ((B, T), relative lengths (B,), float64 so that
        ``round(length * T)`` gives every clip's exact sample count)."""
        longest = max(int(x.shape[0]) for x in items)
        batch = torch.stack([F.pad(x, (0, longest - x.shape[0])) for x in items])
        lengths = torch.tensor([x.shape[0] / longest for x in items], dtype=torch.float64)
        return batch, lengths

    def embed(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) padded waveforms (+ relative lengths) → (B, output_dim), without gradients."""
        with torch.no_grad():
            return self.forward(inputs.to(self.device), lengths)

    def _embed_unpadded(self, wavs: torch.Tensor) -> torch.Tensor:
        feats = self.compute_features(wavs.float())
        ones = torch.ones(wavs.shape[0], device=wavs.device)
        feats = self.mean_norm(feats, ones)
        return self.model(feats, ones).squeeze(1)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) 16 kHz waveforms (+ relative lengths) → (B, 192) embeddings.

        Each clip is embedded without its padding: clips of the same length run together as
        one sub-batch, so a clip's embedding does not depend on the batch it came in.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        n = int(wavs.shape[1])
        if lengths is None:
            return self._embed_unpadded(wavs)
        samples = torch.round(lengths.detach().to("cpu", torch.float64) * n).long().clamp(1, n).tolist()
        if len(set(samples)) == 1:
            return self._embed_unpadded(wavs[:, :samples[0]])
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(samples):
            groups.setdefault(s, []).append(i)
        order = [i for idx in groups.values() for i in idx]
        parts = [self._embed_unpadded(wavs[idx, :s]) for s, idx in groups.items()]
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse.to(wavs.device)]


def _is_ecapa_weights(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and (path / ECAPA_CKPT).is_file())


def _probe_hub(repo_id: str, filename: str) -> str | None:
    from modalink.encoders.image import probe_hub_file

    return probe_hub_file(repo_id, filename)


@register_encoder("ecapa_voxceleb")
def ecapa_voxceleb(pretrained: bool = False, weights: str | os.PathLike | None = None,
                   offline: bool | None = None, min_seconds: float = 0.05, weights_option: str | None = None,
                   **kwargs: Any) -> VoiceEncoder:
    """SpeechBrain ECAPA-TDNN (VoxCeleb), 16 kHz, 192-D.

    ``weights``: a folder holding ``embedding_model.ckpt`` (the ``speechbrain/spkrec-ecapa-voxceleb``
    layout) or the ``.ckpt`` file itself; searched otherwise in ``$MODALINK_HOME/weights/ecapa_voxceleb/``
    and the Hugging Face cache (never relative to the current folder). ``weights_option`` names
    the calling program's setting for ``weights`` in the missing-weights message. Extra keyword
    arguments override the architecture
    (e.g. ``channels=[32, 32, 32, 32, 96]`` for tests); a checkpoint must match it.
    """
    arch = {**ECAPA_ARCH, **kwargs}
    contract = ecapa_contract(int(arch["lin_neurons"]))
    ckpt: Path | None = None
    if pretrained:  # find the weights before building anything, so a missing file fails fast
        def download() -> Path:
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(ECAPA_HUB_ID, ECAPA_CKPT))

        path = resolve_weights(
            contract.name, weights=weights,
            candidates=[weights_cache_dir(contract.name) / ECAPA_CKPT, hf_cached_file(ECAPA_HUB_ID, ECAPA_CKPT)],
            offline=offline, download=download, is_valid=_is_ecapa_weights, filename=ECAPA_CKPT,
            url=f"https://huggingface.co/{ECAPA_HUB_ID}/resolve/main/{ECAPA_CKPT}",
            weights_option=weights_option, point_at="/path/to/spkrec-ecapa-voxceleb",
            extra=[f"(a folder holding {ECAPA_CKPT} works too, e.g. SpeechBrain's pretrained_models/"
                   "spkrec-ecapa-voxceleb)"],
            probe=lambda: _probe_hub(ECAPA_HUB_ID, ECAPA_CKPT),
        )
        ckpt = path / ECAPA_CKPT if path.is_dir() else path
    enc = VoiceEncoder(contract, min_seconds=min_seconds, **arch)
    if ckpt is not None:
        state = load_state_dict(ckpt)
        try:
            enc.model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise InputError(f"{ckpt}: does not match the ECAPA-TDNN architecture {arch}: {e}") from None
        enc.weights_path = str(ckpt)
        log.info("%s: loaded weights from %s", contract.name, ckpt)
    return enc
