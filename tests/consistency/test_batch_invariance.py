"""A file's embedding does not depend on the batch it is embedded in (every encoder), on real media.

Speech comes from espeak-ng when installed (else speech-like audio made by ``tests/speech.py``),
photos from scikit-image; every encoder has random weights (none can be downloaded here).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script
from modalink.encoders import create_encoder
from speech import PHRASES, speech

SMALL_ECAPA = dict(channels=[32, 32, 32, 32, 96], attention_channels=16, se_channels=16)
TOL = 1e-5  # relative L2


def _rel(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return ((a - b).norm(dim=1) / b.norm(dim=1)).numpy()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[tuple[np.ndarray, int]]:
    tmp = tmp_path_factory.mktemp("speech")
    waves = [speech(t, tmp) for t in PHRASES[:5]]
    waves.append((waves[1][0].copy(), waves[1][1]))  # two clips of the same length in one batch
    waves.append((waves[0][0][: len(waves[0][0]) // 3], waves[0][1]))  # a cut clip: same start, shorter
    return waves


def test_voice_clip_alone_equals_clip_in_padded_batch(clips):
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", **SMALL_ECAPA)
    assert len({len(w) for w, _ in clips}) >= 5  # the batch pads most clips
    batch = enc.preprocess_batch(clips)
    assert batch.lengths is not None and float(batch.lengths.min()) < 0.5
    together = enc.embed_batch(batch)
    alone = torch.cat([enc.embed(enc.preprocess(w, sr).unsqueeze(0)) for w, sr in clips])
    assert _rel(together, alone).max() <= TOL
    # any other composition and order of the batch gives the same rows
    order = [6, 2, 0]
    other = enc.embed_batch(enc.preprocess_batch([clips[i] for i in order]))
    assert _rel(other, alone[order]).max() <= TOL


def test_voice_forward_keeps_gradients_in_batch_order(clips):
    """The differentiable path is batch-invariant too, and each row's gradient reaches its own clip only."""
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", **SMALL_ECAPA)
    items = [enc.preprocess(w, sr) for w, sr in clips[:4]]
    wavs, lengths = enc.collate(items)
    wavs.requires_grad_(True)
    out = enc(wavs, lengths)
    out[2].sum().backward()
    touched = [bool(g.abs().sum() > 0) for g in wavs.grad]
    assert touched == [False, False, True, False]
    assert int((wavs.grad[2] != 0).nonzero().max()) < items[2].shape[0]  # nothing flows into its padding
    with torch.no_grad():
        alone = torch.cat([enc(x.unsqueeze(0)) for x in items])
    assert _rel(out.detach(), alone).max() <= TOL


def _frames() -> list[Image.Image]:
    skdata = pytest.importorskip("skimage.data")
    ast = Image.fromarray(skdata.astronaut()).convert("RGB")
    cam = Image.fromarray(skdata.camera()).convert("RGB")
    cat = Image.fromarray(skdata.chelsea()).convert("RGB")
    return [ast.resize((160, 160)), cam.resize((160, 160)), cat.resize((160, 160)),
            ast.crop((100, 0, 400, 300)).resize((120, 140))]


@pytest.mark.parametrize("name,kwargs", [("facenet_vggface2", {"image_size": 80}),
                                         ("timm/resnet18", {}), ("pixel-stats", {})])
def test_image_encoders_alone_equal_batched(name, kwargs):
    torch.manual_seed(0)
    enc = create_encoder(name, **kwargs)
    frames = _frames()
    batch = enc.preprocess_batch(frames)
    together = enc.embed_batch(batch)
    alone = torch.cat([enc.embed_batch(enc.preprocess_batch([f])) for f in frames])
    assert batch.kept == list(range(len(frames)))
    assert _rel(together, alone).max() <= TOL


def test_bench_voice_batching_smoke(tmp_path):
    bench = load_script(Path(__file__).resolve().parents[2] / "scripts" / "bench_voice_batching.py")
    assert bench.main(["--clips", "3", "--batch-size", "2", "--arch", "small", "--min-seconds", "0.5",
                       "--max-seconds", "1", "--threads", "1", "--output", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["invariant"]["max_rel_diff_vs_alone"] <= TOL and res["clips"] == 3
