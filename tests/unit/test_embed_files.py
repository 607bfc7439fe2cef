"""embed_files: the one front end from image and audio files to embedding rows."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from modalink.encoders import NoFaceError, PixelStats, create_encoder, embed_files

SMALL_ECAPA = dict(channels=[16, 16, 16, 16, 48], attention_channels=8, se_channels=8)


def _rows(encoder, paths, **kw) -> dict[str, object]:
    out = {}
    for batch in embed_files(encoder, paths, progress=False, **kw):
        for r in batch:
            assert r.relpath not in out
            out[r.relpath] = r
    assert len(out) == len(set(os.fspath(p) for p in paths))
    return out


@pytest.fixture()
def images(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for k in range(5):
        name = f"img{k}.png"
        Image.fromarray(rng.integers(0, 255, (30 + 4 * k, 40, 3), dtype=np.uint8)).save(tmp_path / name)
        names.append(name)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    return names[:2] + ["bad.jpg", "gone.jpg"] + names[2:] + ["loop.jpg"]


def test_images_alone_and_batched_give_the_same_rows_and_bad_files_are_reported(tmp_path, images):
    enc = PixelStats(size=32, thumb=4, cells=4).eval()
    batched = _rows(enc, images, root=tmp_path, batch_size=4)
    alone = _rows(enc, images, root=tmp_path, batch_size=1)
    for name in images:
        a, b = alone[name], batched[name]
        assert a.index == b.index == images.index(name)
        if a.embedding is None:
            assert b.embedding is None and (a.problem, a.detail, a.stage) == (b.problem, b.detail, b.stage)
        else:
            np.testing.assert_array_equal(a.embedding, b.embedding)
            assert a.problem is None and a.stage == ""
    assert (batched["bad.jpg"].problem, batched["bad.jpg"].stage) == ("unreadable_image", "read")
    assert "cannot decode the image" in batched["bad.jpg"].detail
    assert batched["gone.jpg"].problem == "missing_image" and batched["gone.jpg"].detail == "file not found"
    assert batched["loop.jpg"].problem == "symlink_loop"
    good = [n for n in images if batched[n].embedding is not None]
    assert len(good) == 5
    direct = enc.embed(torch.stack([enc.preprocess(Image.open(tmp_path / n).convert("RGB")) for n in good]))
    np.testing.assert_allclose(np.stack([batched[n].embedding for n in good]), direct.numpy(), atol=1e-6)


class _Picky(PixelStats):
    """Refuses narrow images, as a face encoder refuses an image without a face."""

    def preprocess(self, raw):
        if raw.width < 40:
            raise NoFaceError("no face")
        return super().preprocess(raw)


def test_inputs_the_encoder_refuses_come_back_with_its_reason(tmp_path, images):
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "narrow.png")
    enc = _Picky(size=32, thumb=4, cells=4).eval()
    rows = _rows(enc, [*images, "narrow.png"], root=tmp_path, batch_size=3)
    narrow = rows["narrow.png"]
    assert narrow.embedding is None and narrow.problem == "no_face" and narrow.stage == "encoder"
    assert "no face" in narrow.detail
    assert sum(r.embedding is not None for r in rows.values()) == 5


@pytest.fixture()
def clips(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for k, seconds in enumerate([0.9, 0.6, 1.3, 0.75]):
        t = np.arange(int(16000 * seconds)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (180 + 40 * k) * t) + 0.05 * rng.standard_normal(t.shape)
        paths.append(tmp_path / f"clip{k}.wav")
        sf.write(paths[-1], wave.astype(np.float32), 16000 if k != 2 else 22050)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF0000WAVEjunk")
    sf.write(tmp_path / "short.wav", 0.3 * np.ones(800, np.float32), 16000)
    return [paths[0], tmp_path / "silent.wav", paths[1], tmp_path / "corrupt.wav", paths[2], paths[3],
            tmp_path / "short.wav"]


def test_audio_alone_and_batched_give_the_same_rows_and_bad_files_are_reported(clips):
    torch.manual_seed(0)
    enc = create_encoder("ecapa_voxceleb", pretrained=False, **SMALL_ECAPA)
    batched = _rows(enc, clips, batch_size=3, min_seconds=0.5)
    alone = _rows(enc, clips, batch_size=1, min_seconds=0.5)
    reasons = {Path(k).name: r.problem for k, r in batched.items() if r.embedding is None}
    assert reasons == {"silent.wav": "silent_audio", "corrupt.wav": "unreadable_audio",
                       "short.wav": "too_short_audio"}
    assert all(batched[k].stage == "read" for k in batched if batched[k].embedding is None)
    for k, r in batched.items():
        assert r.index == [os.fspath(p) for p in clips].index(k)
        if r.embedding is not None:
            np.testing.assert_allclose(r.embedding, alone[k].embedding, rtol=1e-5, atol=1e-6)
    assert sum(r.embedding is not None for r in batched.values()) == 4


def test_no_paths_yield_nothing():
    assert list(embed_files(PixelStats(size=32, thumb=4, cells=4), [], progress=False)) == []
