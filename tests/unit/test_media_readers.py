"""The one image reader and the one audio reader: every unusable file is a user error that names
the file and carries a reason tag; readable files decode the same way everywhere."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modalink.audio import AudioError, load_audio
from modalink.errors import FileFormatError, is_user_error
from modalink.images import ImageError, read_image, verify_image


def test_image_problems_are_named_and_tagged(tmp_path: Path) -> None:
    from PIL import Image

    good = tmp_path / "good.png"
    Image.fromarray(np.full((5, 7, 3), 200, dtype=np.uint8)).save(good)
    assert read_image(good).size == (7, 5) and read_image(good).mode == "RGB"
    verify_image(good)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:40])
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    cases = {"missing.jpg": "missing_image", "bad.jpg": "unreadable_image", "cut.png": "unreadable_image",
             "loop": "symlink_loop", ".": "unreadable_image"}
    for name, reason in cases.items():
        readers = (read_image, verify_image) if name != "cut.png" else (read_image,)
        for reader in readers:
            with pytest.raises(ImageError) as info:
                reader(tmp_path / name)
            err = info.value
            assert err.reason == reason and isinstance(err, FileFormatError) and is_user_error(err)
            assert str(err).startswith(str(tmp_path / name)), str(err)


def test_audio_problems_are_file_format_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path / "bad.wav", 16000)
    assert isinstance(info.value, FileFormatError) and is_user_error(info.value)
    assert info.value.reason == "unreadable_audio" and str(tmp_path / "bad.wav") in str(info.value)
