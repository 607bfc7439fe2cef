"""Encoders: contracts, offline weight lookup, local-file round trips, no-face policy, audio I/O."""
from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from modalink.audio import (
    AudioError,
    AudioReadError,
    EmptyAudioError,
    SilentAudioError,
    TooShortAudioError,
    load_audio,
    resample,
)
from modalink.encoders import (
    EncoderContract,
    FaceEncoder,
    NoFaceError,
    WeightsNotFoundError,
    center_crop_resize,
    create_encoder,
    is_offline,
    list_encoders,
)

TINY_ECAPA = dict(channels=[16, 16, 16, 16, 48], attention_channels=8, se_channels=8)


@pytest.fixture(autouse=True)
def _online_switch_unset(monkeypatch):
    """The suite forbids downloads; these tests set the offline switch themselves (empty caches
    come from the suite's isolation fixture)."""
    for k in ("MODALINK_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def guard(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(scope="module")
def face_encoder() -> FaceEncoder:
    torch.manual_seed(0)
    return create_encoder("facenet_vggface2")


def gray(value: int, size=(120, 100)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8))


# ----------------------------------------------------------------------------- registry / contracts


def test_registry_lists_and_rejects_unknown():
    names = list_encoders()
    assert {"facenet_vggface2", "facenet_casia_webface", "ecapa_voxceleb", "timm"} <= set(names)
    with pytest.raises(KeyError, match="known encoders"):
        create_encoder("no_such_encoder")


@pytest.mark.parametrize("name,kwargs,modality,dim,normed,size,rate", [
    ("facenet_vggface2", {}, "face", 512, True, (160, 160), None),
    ("facenet_casia_webface", {}, "face", 512, True, (160, 160), None),
    ("ecapa_voxceleb", TINY_ECAPA, "voice", 192, False, None, 16000),
    ("timm/test_resnet", {}, "image", None, False, None, None),
])
def test_contracts(name, kwargs, modality, dim, normed, size, rate, no_network, face_encoder):
    enc = face_encoder if name == "facenet_vggface2" else create_encoder(name, **kwargs)
    c = enc.contract
    assert isinstance(c, EncoderContract)
    assert c.modality == modality and c.l2_normalized is normed
    assert c.weight_source and c.licence
    if dim is not None:
        assert c.output_dim == dim
    if size is not None:
        assert c.image_size == size
    if rate is not None:
        assert c.sample_rate == rate and "fbank" in c.features
    assert not enc.training  # create_encoder returns eval mode
    d = c.to_dict()
    assert d["output_dim"] == c.output_dim and isinstance(d["mean"] or [], list)


def test_facenet_normalisation_matches_fixed_image_standardization(face_encoder):
    from facenet_pytorch import fixed_image_standardization

    pixels = torch.randint(0, 256, (2, 3, 160, 160)).float()
    torch.testing.assert_close(face_encoder.normalize(pixels), fixed_image_standardization(pixels))


def test_timm_contract_matches_real_output_and_transform(no_network):
    enc = create_encoder("timm/test_resnet")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8))
    x = enc.preprocess(img)
    assert tuple(x.shape) == (3, *enc.contract.image_size)
    out = enc.embed_batch(enc.preprocess_batch([img, img]))
    assert out.shape == (2, enc.contract.output_dim)
    torch.testing.assert_close(out[0], out[1])


# ----------------------------------------------------------------------------- offline weights


def test_is_offline_reads_environment(monkeypatch):
    assert is_offline() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline() is True
    assert is_offline(False) is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("MODALINK_OFFLINE", "true")
    assert is_offline() is True


@pytest.mark.parametrize("name,kwargs,expect", [
    ("facenet_vggface2", {}, "20180402-114759-vggface2.pt"),
    ("ecapa_voxceleb", TINY_ECAPA, "embedding_model.ckpt"),
    ("timm/test_resnet", {}, "model.safetensors"),
])
def test_offline_without_local_weights_raises_clear_error(name, kwargs, expect, no_network):
    with pytest.raises(WeightsNotFoundError) as info:
        create_encoder(name, pretrained=True, offline=True, **kwargs)
    msg = str(info.value)
    assert "offline" in msg and expect in msg
    assert os.environ["MODALINK_HOME"] in msg  # names the cache path to fill


def test_env_offline_switch_raises(monkeypatch, no_network):
    monkeypatch.setenv("MODALINK_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="offline"):
        create_encoder("ecapa_voxceleb", pretrained=True, **TINY_ECAPA)


def test_missing_explicit_weights_file(tmp_path, no_network):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        create_encoder("facenet_vggface2", weights=tmp_path / "nope.pt")


def test_facenet_local_file_round_trip(tmp_path, no_network, face_encoder):
    # the release files carry the training classifier: it must be ignored
    state = {k: v.clone() for k, v in face_encoder.backbone.state_dict().items()}
    state["logits.weight"] = torch.randn(8631, 512)
    state["logits.bias"] = torch.randn(8631)
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    torch.manual_seed(123)  # a different random init, overwritten by the file
    loaded = create_encoder("facenet_vggface2", weights=path, offline=True)
    assert loaded.weights_path == str(path)
    x = torch.randn(2, 3, 96, 96)  # the network pools adaptively; small inputs keep this fast
    torch.testing.assert_close(loaded.embed(x), face_encoder.embed(x))


def test_facenet_found_in_modalink_cache(tmp_path, no_network, face_encoder, monkeypatch):
    cache = Path(str(tmp_path / "mh"))
    monkeypatch.setenv("MODALINK_HOME", str(cache))
    target = cache / "weights" / "facenet_vggface2" / "20180402-114759-vggface2.pt"
    target.parent.mkdir(parents=True)
    torch.save(face_encoder.backbone.state_dict(), target)
    loaded = create_encoder("facenet_vggface2", pretrained=True, offline=True)
    assert loaded.weights_path == str(target)


def test_ecapa_local_folder_round_trip(tmp_path, no_network):
    torch.manual_seed(0)
    ref = create_encoder("ecapa_voxceleb", **TINY_ECAPA)
    folder = tmp_path / "spkrec-ecapa-voxceleb"
    folder.mkdir()
    torch.save(ref.model.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text("pretrained_path: speechbrain/spkrec-ecapa-voxceleb\n")
    torch.manual_seed(1)
    loaded = create_encoder("ecapa_voxceleb", weights=folder, offline=True, **TINY_ECAPA)
    wav = torch.randn(2, 16000)
    out = loaded.embed(wav)
    assert out.shape == (2, 192)
    torch.testing.assert_close(out, ref.embed(wav))
    # a checkpoint that does not match the architecture is a clear error
    with pytest.raises(ValueError, match="does not match"):
        create_encoder("ecapa_voxceleb", weights=folder, channels=[8, 8, 8, 8, 24],
                       attention_channels=8, se_channels=8)


def test_ecapa_padded_batch_matches_single_items(no_network):
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", **TINY_ECAPA)
    rng = np.random.default_rng(0)
    waves = [(rng.standard_normal(16000).astype(np.float32), 16000),
             (rng.standard_normal(12000).astype(np.float32), 16000)]
    batch = enc.preprocess_batch(waves)
    assert batch.lengths is not None and batch.lengths.tolist() == [1.0, 0.75]
    together = enc.embed_batch(batch)
    alone = torch.cat([enc.embed(enc.preprocess(w).unsqueeze(0)) for w in waves])
    # each clip is embedded without its padding: the padded one as if it were alone
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_ecapa_resamples_to_contract_rate():
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", **TINY_ECAPA)
    x = enc.preprocess(np.zeros(44100, np.float32) + 0.1, 44100)
    assert x.shape == (16000,)
    with pytest.raises(Exception, match="shorter"):
        enc.preprocess(np.ones(100, np.float32), 16000)


def test_timm_local_file_round_trip(tmp_path, no_network):
    import timm

    torch.manual_seed(0)
    src = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    path = tmp_path / "test_resnet.pth"
    torch.save(src.state_dict(), path)  # with its classifier: dropped for num_classes=0
    loaded = create_encoder("timm/test_resnet", weights=path)
    src.reset_classifier(0)
    src.eval()
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(loaded.embed(x), src(x))


# ----------------------------------------------------------------------------- face detection policy


def test_mtcnn_no_face_center_crop(face_encoder):
    images = [gray(40), gray(200, size=(90, 150))]
    batch = face_encoder.preprocess_batch(images)
    assert batch.kept == [0, 1] and batch.dropped == {}
    assert batch.flagged == {0: "no_face", 1: "no_face"}
    expected = face_encoder.normalize(torch.stack([center_crop_resize(im, 160) for im in images]))
    torch.testing.assert_close(batch.inputs, expected)
    emb = face_encoder.embed_batch(batch)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))


def test_center_crop_resize_takes_the_middle_square():
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, 10:20] = 255  # the central 10x10 square is white
    out = center_crop_resize(Image.fromarray(arr), 10)
    assert out.shape == (3, 10, 10) and torch.all(out == 255)


def test_no_face_skip_policy_with_injected_detector(face_encoder):
    seen = []

    def detector(images):
        seen.append(len(images))
        return [None if i % 2 else torch.full((3, 160, 160), 128.0) for i in range(len(images))]

    enc = FaceEncoder(face_encoder.contract, face_encoder.backbone, detector=detector, no_face="skip")
    batch = enc.preprocess_batch([gray(10), gray(20), gray(30)])
    assert seen == [3]
    assert batch.kept == [0, 2] and batch.dropped == {1: "no_face"} and batch.flagged == {}
    assert enc.embed_batch(batch).shape == (2, 512)
    # single-item preprocess raises for the skip policy; an all-dropped batch is fine
    enc2 = FaceEncoder(face_encoder.contract, face_encoder.backbone, no_face="skip",
                       detector=lambda ims: [None] * len(ims))
    with pytest.raises(NoFaceError):
        enc2.preprocess(gray(5))
    empty = enc2.preprocess_batch([gray(1), gray(2)])
    assert empty.inputs is None and enc2.embed_batch(empty).shape == (0, 512)
    with pytest.raises(ValueError, match="no_face"):
        FaceEncoder(face_encoder.contract, face_encoder.backbone, no_face="crash")


# ----------------------------------------------------------------------------- audio


def _sine(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_load_audio_resamples_44k1_to_16k(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.stack([_sine(44100, 1.0), _sine(44100, 1.0)], axis=1), 44100)  # stereo
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.shape[0] == 16000
    ref = _sine(16000, 1.0)
    # away from the filter's edge transients the signal matches the analytic 16 kHz sine
    np.testing.assert_allclose(wave[200:-200], ref[200:-200], atol=2e-3)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) <= 1.0


def test_load_audio_16k_is_read_unchanged(tmp_path):
    path = tmp_path / "b.wav"
    x = _sine(16000, 0.5)
    sf.write(path, x, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 16000), x)


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError):
        resample(np.zeros(10), 0, 16000)


def test_audio_error_policy(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    short = tmp_path / "short.wav"
    sf.write(short, _sine(16000, 0.1), 16000)
    with pytest.raises(EmptyAudioError):
        load_audio(empty, 16000)
    with pytest.raises(SilentAudioError):
        load_audio(silent, 16000)
    with pytest.raises(AudioReadError):
        load_audio(corrupt, 16000)
    with pytest.raises(AudioReadError, match="not found"):
        load_audio(tmp_path / "missing.wav", 16000)
    with pytest.raises(TooShortAudioError):
        load_audio(short, 16000, min_seconds=0.5)
    assert load_audio(short, 16000).shape == (1600,)
    for exc in (EmptyAudioError, SilentAudioError, AudioReadError, TooShortAudioError):
        assert issubclass(exc, AudioError)
    try:
        load_audio(silent, 16000)
    except AudioError as e:
        assert e.reason == "silent_audio" and e.path == silent


@pytest.mark.parametrize("ext,kw", [(".mp3", {}), (".ogg", {}), (".flac", {}), (".aiff", {}),
                                    (".opus", {"format": "OGG", "subtype": "OPUS"})])
def test_every_scanned_extension_decodes(tmp_path, ext, kw):
    from modalink.audio import AUDIO_EXTENSIONS

    assert ext in AUDIO_EXTENSIONS
    path = tmp_path / f"a{ext}"
    sf.write(path, _sine(16000, 0.5), 16000, **kw)
    wave = load_audio(path, 16000)
    assert abs(wave.shape[0] - 8000) < 1200  # lossy codecs pad a little


def test_zero_byte_file_is_empty_audio(tmp_path):
    path = tmp_path / "zero.flac"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError, match="0 bytes"):
        load_audio(path, 16000)


def test_resolve_device():
    from modalink.encoders.base import DeviceNotAvailableError, resolve_device
    from modalink.errors import UserError

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(DeviceNotAvailableError, match="not a device name"):
        resolve_device("gpu")
    assert issubclass(DeviceNotAvailableError, UserError)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceNotAvailableError, match=r"--device cuda:1: no CUDA GPU.*--device cpu"):
            resolve_device("cuda:1")


def test_missing_weights_of_several_encoders_in_one_error(no_network):
    from modalink.encoders.base import MissingWeightsError, build_all

    with pytest.raises(MissingWeightsError) as info:
        build_all([lambda: create_encoder("facenet_vggface2", pretrained=True, offline=True, weights_option="--fw"),
                   lambda: create_encoder("ecapa_voxceleb", pretrained=True, offline=True, weights_option="--vw",
                                          **TINY_ECAPA)])
    msg = str(info.value)
    assert "missing for 2 encoders" in msg and len(info.value.errors) == 2
    assert "--fw=/path/to/20180402-114759-vggface2.pt" in msg and "--vw=/path/to/spkrec-ecapa-voxceleb" in msg
    assert os.path.join(os.environ["MODALINK_HOME"], "weights", "ecapa_voxceleb", "embedding_model.ckpt") in msg


def test_unreachable_server_fails_fast_without_downloading(tmp_path):
    from modalink.encoders.base import resolve_weights

    def download():
        raise AssertionError("download attempted although the probe failed")

    with pytest.raises(WeightsNotFoundError, match="cannot be reached.*no route") as info:
        resolve_weights("enc", weights=None, candidates=[tmp_path / "w.pt"], offline=False, download=download,
                        filename="w.pt", url="https://example.invalid/w.pt", weights_option="--w",
                        probe=lambda: "no route")
    assert f"put it at:      {tmp_path / 'w.pt'}" in str(info.value) and "--w=/path/to/w.pt" in str(info.value)


def test_identity_is_what_decides_the_embeddings(tmp_path) -> None:
    """Encoder.identity(): equal for encoders that embed alike, different when the options, the
    random seed or the weights' content differ, whatever folder the weights are in; JSON-safe."""
    import json

    from modalink.encoders import create_encoder

    a = create_encoder("pixel-stats", thumb=8)
    assert a.identity() == create_encoder("pixel-stats", thumb=8).identity()
    assert a.identity() != create_encoder("pixel-stats", thumb=4).identity()
    assert a.identity()["weights"] == "none" and json.loads(json.dumps(a.identity())) == a.identity()
    torch.manual_seed(0)
    voice = create_encoder("ecapa_voxceleb")
    assert voice.identity(seed=1)["weights"] == "random (seed 1)" != voice.identity(seed=2)["weights"]
    weights = tmp_path / "ecapa.pt"
    torch.save(voice.model.state_dict(), weights)
    copy = tmp_path / "copy" / "ecapa.pt"
    copy.parent.mkdir()
    copy.write_bytes(weights.read_bytes())
    loaded = create_encoder("ecapa_voxceleb", weights=weights)
    assert loaded.identity() == create_encoder("ecapa_voxceleb", weights=copy).identity()
    torch.manual_seed(1)
    torch.save(create_encoder("ecapa_voxceleb").model.state_dict(), copy)
    assert loaded.identity() != create_encoder("ecapa_voxceleb", weights=copy).identity()
