"""The shared input-contract check: embeddings from other encoders than a model was trained on."""
from __future__ import annotations

import logging

import pytest
import torch

from modalink.encoders import create_encoder
from modalink.encoders.contract_check import (
    InputContractError,
    check_input_contract,
    encoder_input_identity,
    input_identity,
    weights_identity,
)
from modalink.errors import UserError


def test_same_width_other_encoder_is_refused_in_one_line():
    expected = input_identity("facenet_vggface2", 512, "facenet.pt blake2b:aa")
    actual = input_identity("timm/resnet18", 512, "resnet18.safetensors blake2b:bb")
    with pytest.raises(InputContractError) as info:
        check_input_contract(expected, actual, "model English, face input", override_hint="--allow-encoder-mismatch")
    msg = str(info.value)
    assert isinstance(info.value, UserError) and "\n" not in msg
    assert "facenet_vggface2" in msg and "timm/resnet18" in msg and "--allow-encoder-mismatch" in msg
    assert msg.startswith("model English, face input")


def test_override_warns_and_returns_the_differences(caplog):
    expected = input_identity("ecapa_voxceleb", 192, "random (seed 1)")
    actual = input_identity("ecapa_voxceleb", 192, "embedding_model.ckpt blake2b:cc")
    with caplog.at_level(logging.WARNING, logger="modalink.encoders"):
        diffs = check_input_contract(expected, actual, "voice input", override=True)
    assert diffs == ["weights random (seed 1) vs embedding_model.ckpt blake2b:cc"]
    assert "used anyway" in caplog.text


def test_unknown_sides_are_not_compared():
    assert check_input_contract(input_identity("a", 8, None), input_identity("a", 8, "x blake2b:1"), "x") == []
    assert check_input_contract({"encoder": "a"}, input_identity("a", 8, "w"), "x") == []
    with pytest.raises(InputContractError, match="output_dim 8 vs 16"):
        check_input_contract(input_identity("a", 8), input_identity("a", 16), "x")


def test_weights_identity_is_the_content(tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "sub" / "a.pt", tmp_path / "c.pt"
    b.parent.mkdir()
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    c.write_bytes(b"others!")
    assert weights_identity(a) == weights_identity(b) != weights_identity(c.rename(tmp_path / "a2.pt"))
    assert weights_identity(tmp_path / "missing.pt") is None and weights_identity(None) is None
    assert weights_identity(random=True, seed=3) == "random (seed 3)"


def test_encoder_identity_of_built_encoders():
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", channels=[8, 8, 8, 8, 24], attention_channels=8, se_channels=8)
    ident = encoder_input_identity(enc, "ecapa_voxceleb", seed=1)
    assert ident == {"encoder": "ecapa_voxceleb", "output_dim": 192, "weights": "random (seed 1)"}
    assert encoder_input_identity(create_encoder("pixel-stats"))["weights"] == "none"


def test_library_weight_names_are_kept():
    assert weights_identity("timm:resnet18") == "timm:resnet18"
    assert weights_identity("/no/such/file.pt") is None


def test_extra_keys_are_compared_too():
    a = input_identity("ecapa_voxceleb", 192, "random (seed 1)", args={"channels": [8, 8]}, random_weights=True)
    b = input_identity("ecapa_voxceleb", 192, None, args={"channels": [16, 16]}, random_weights=False)
    with pytest.raises(InputContractError, match=r"args .*channels.* vs .*; random_weights True vs False"):
        check_input_contract(a, b, "voice input")
    assert check_input_contract(a, input_identity("ecapa_voxceleb", 192, args={"channels": [8, 8]}), "x") == []
