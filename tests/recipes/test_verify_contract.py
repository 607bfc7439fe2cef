"""The raw-media verifier checks an exported model's input contract against its encoders, and
says when the encoders have random weights."""
from __future__ import annotations

import logging
import shutil

import pytest
import torch
import torch.nn as nn

from modalink.face_voice.raw import RawEncoderSettings
from modalink.encoders import create_encoder
from modalink.encoders.contract_check import InputContractError
from modalink.face_voice.verify import (
    FaceVoiceVerifier,
    RawMediaEmbedder,
    check_model_inputs,
    embedder_input_identities,
    recorded_input_identities,
)

TINY = {"channels": [8, 8, 8, 8, 24], "attention_channels": 8, "se_channels": 8}


class Exported(nn.Module):
    """A stand-in for a model loaded with modalink.hub.from_pretrained (only its contract matters)."""

    def __init__(self, contract: dict) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.input_dims = {"face": contract["face_dim"], "voice": contract["voice_dim"]}
        self.export_config = {"contract": contract}


def _settings(**kw) -> RawEncoderSettings:
    return RawEncoderSettings(face_encoder="pixel-stats", voice_encoder="ecapa_voxceleb", voice_args=dict(TINY), **kw)


def _contract(settings: RawEncoderSettings, embedder: RawMediaEmbedder) -> dict:
    """What train.py records: the widths and prepare.py's feature_info (to_info)."""
    return {"face_dim": embedder.face_dim, "voice_dim": embedder.voice_dim,
            "feature_info": settings.to_info(embedder.face_encoder, embedder.voice_encoder)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two ECAPA checkpoints of the same architecture and file name (other weights), and a copy of the first."""
    root = tmp_path_factory.mktemp("ckpt")
    paths = []
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        enc = create_encoder("ecapa_voxceleb", **TINY)
        (root / name).mkdir()
        torch.save(enc.model.state_dict(), root / name / "embedding_model.ckpt")
        paths.append(root / name / "embedding_model.ckpt")
    (root / "copy").mkdir()
    shutil.copy(paths[0], root / "copy" / "embedding_model.ckpt")
    return {"a": paths[0], "b": paths[1], "copy": root / "copy" / "embedding_model.ckpt"}


def _embedder(settings: RawEncoderSettings) -> RawMediaEmbedder:
    return RawMediaEmbedder.from_settings(settings, device="cpu", offline=True, progress=False)


def test_same_encoders_pass_and_identities_agree():
    s = _settings(random_weights=True, seed=3)
    emb = _embedder(s)
    model = Exported(_contract(s, emb))
    assert check_model_inputs(model, emb) == []
    rec, act = recorded_input_identities(model.export_config["contract"]), embedder_input_identities(emb)
    assert rec["voice"]["weights"] == act["voice"]["weights"] == "random (seed 4)"
    assert "weights" not in act["face"]  # pixel-stats has no weights: its name is its identity
    assert emb.random_weights


def test_other_encoder_arguments_and_csv_trained_models_refused():
    trained = _settings(random_weights=True)
    emb = _embedder(trained)
    model = Exported(_contract(trained, emb))
    other = _settings(random_weights=True)
    other.voice_args = {**TINY, "channels": [16, 16, 16, 16, 48]}
    with pytest.raises(InputContractError, match=r"\(voice input\).*args"):
        check_model_inputs(model, _embedder(other))
    csv_model = Exported({"face_dim": emb.face_dim, "voice_dim": emb.voice_dim, "features": {"source": "csv"}})
    with pytest.raises(InputContractError, match="CSV features without a prepare.py feature_info.json"):
        check_model_inputs(csv_model, emb)
    # an export that records no feature origin: only its widths are checked
    assert check_model_inputs(Exported({"face_dim": emb.face_dim, "voice_dim": emb.voice_dim}), emb) == []


def test_verifier_warns_about_random_weights_and_accepted_mismatch(checkpoints, caplog):
    s = _settings(random_weights=True)
    emb = _embedder(s)
    model = Exported(_contract(s, emb))
    with caplog.at_level(logging.WARNING, logger="modalink.face_voice.verify"):
        v = FaceVoiceVerifier(model, emb)
    assert v.random_weights and "RANDOM weights" in caplog.text and "mean nothing" in caplog.text
    pretrained = _embedder(_settings(voice_weights=str(checkpoints["a"])))
    assert not pretrained.random_weights
    with pytest.raises(InputContractError, match="allow_encoder_mismatch=True"):
        FaceVoiceVerifier(model, pretrained)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modalink.face_voice.verify"):
        FaceVoiceVerifier(model, pretrained, allow_encoder_mismatch=True)
    assert "used anyway" in caplog.text and "RANDOM" not in caplog.text
