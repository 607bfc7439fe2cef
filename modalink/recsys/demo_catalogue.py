"""A small real-media catalogue for demos and tests: photos from scikit-image, audio written here.

:func:`write_demo_catalogue` writes the catalogue layout of :mod:`modalink.recsys.catalogue`:
items are random crops (and mirror images) of real photos shipped with scikit-image
(``skimage.data``: astronaut, chelsea, coffee, rocket, camera, hubble_deep_field), so items
cut from the same photo form a *group*; each item has a short audio clip (a chord whose pitch
depends on the group, with per-item jitter and noise) written with soundfile — or, with
``audio="speech"``, real synthetic speech from ``espeak-ng``: each group is read by its own voice,
each item says a few of its group's words at its own pitch and speed — a text of words
drawn partly from the group's vocabulary, and tags. Users prefer one or two groups and pick items
from them, so an item's content predicts who interacts with it and a content tower can rank
cold items; popularity and MF cannot. Some inputs are broken on purpose (``broken=True``): a
listed image that does not exist, an image file that is not an image, a silent audio file and
interactions naming unknown items, so the counted handling of bad input is visible.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from modalink.errors import InputError

__all__ = ["write_demo_catalogue", "espeak_available", "PHOTOS", "VOICES"]

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")
_WORDS = {
    "astronaut": "space suit flag moon mission nasa helmet orbit",
    "chelsea": "cat whiskers fur tabby kitten paws purr pet",
    "coffee": "cup espresso mug saucer latte bean brew morning",
    "rocket": "launch pad booster flame countdown lift engine sky",
    "camera": "photographer tripod lens portrait film shot grey man",
    "hubble_deep_field": "galaxy stars deep field telescope cosmos light dark",
}
_COMMON = "great nice classic new popular item best value daily special fine good".split()
VOICES = ("en+m1", "en+f2", "en+m3", "en+f4", "en+m7", "en+f5")  # espeak-ng voice of each group


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is installed (needed for ``audio="speech"``)."""
    return shutil.which("espeak-ng") is not None


def _speak(path: Path, words: str, voice: str, pitch: int, speed: int) -> None:
    try:
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), words],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"espeak-ng could not write {path}: {e}") from None


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3].astype(np.uint8)


def write_demo_catalogue(root: str | os.PathLike, *, items_per_photo: int = 30, n_users: int = 300,
                         interactions_per_user: tuple[int, int] = (8, 16), size: int = 96,
                         missing_image: float = 0.1, missing_audio: float = 0.2, missing_text: float = 0.1,
                         text_signal: float = 0.3, sample_rate: int = 16000, seconds: float = 0.5,
                         broken: bool = True, audio: str = "tone", seed: int = 0) -> dict[str, Any]:
    """Write the catalogue to ``root`` (``items.csv``, ``interactions.csv``, ``images/``,
    ``audio/``); returns a summary (counts, the group of each item). Deterministic in ``seed``.
    ``audio``: ``"tone"`` (a chord per group) or ``"speech"`` (espeak-ng, see the module text)."""
    if audio not in ("tone", "speech"):
        raise InputError(f"audio must be 'tone' or 'speech', got {audio!r}")
    if audio == "speech" and not espeak_available():
        raise RuntimeError("audio='speech' needs the espeak-ng program (apt-get install espeak-ng)")
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows, groups = [], []
    base_freqs = 220.0 * 2 ** (np.arange(len(PHOTOS)) * 2.5 / 12 * 2)  # well-separated pitches per group
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for g, name in enumerate(PHOTOS):
        img = _photo(name)
        h, w = img.shape[:2]
        vocab = _WORDS[name].split()
        for j in range(items_per_photo):
            iid = f"{name}_{j:03d}"
            frac = rng.uniform(0.45, 0.8)
            ch, cw = int(h * frac), int(w * frac)
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = img[y:y + ch, x:x + cw]
            if j % 2 == 1:
                crop = crop[:, ::-1]  # mirror images are distinct items
            image = ""
            if rng.random() >= missing_image:
                image = f"images/{iid}.jpg"
                Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR).save(root / image, quality=90)
            audio_file = ""
            has_audio = rng.random() >= missing_audio
            if has_audio and audio == "speech":
                audio_file = f"audio/{iid}.wav"
                said = " ".join(str(w) for w in rng.choice(vocab, size=3, replace=False))
                _speak(root / audio_file, said, VOICES[g % len(VOICES)], int(rng.integers(35, 66)),
                       int(rng.integers(140, 191)))
            elif has_audio:
                f0 = base_freqs[g] * rng.uniform(0.97, 1.03)
                wave = sum(a * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k, a in ((1, 0.5), (2, 0.25), (3, 0.12)))
                wave = wave * np.hanning(t.size) ** 0.2 + 0.02 * rng.standard_normal(t.size)
                audio_file = f"audio/{iid}.wav"
                sf.write(root / audio_file, wave.astype(np.float32), sample_rate)
            text = ""
            if rng.random() >= missing_text:
                words = [rng.choice(vocab) if rng.random() < text_signal else rng.choice(_COMMON) for _ in range(6)]
                text = " ".join(words)
            tags = sorted({vocab[0]} if rng.random() < 0.5 else set()) + [str(rng.choice(_COMMON))]
            rows.append([iid, text, "|".join(tags), image, audio_file])
            groups.append(g)
    broken_info: dict[str, str] = {}
    if broken:
        rows[1][3] = "images/does_not_exist.jpg"
        broken_info["missing_image"] = rows[1][0]
        (root / "images" / "not_an_image.jpg").write_text("this is not a JPEG\n")
        rows[2][3] = "images/not_an_image.jpg"
        broken_info["unreadable_image"] = rows[2][0]
        sf.write(root / "audio" / "silent.wav", np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate)
        rows[3][4] = "audio/silent.wav"
        broken_info["unreadable_audio"] = rows[3][0]
    with open(root / "items.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["item_id", "text", "tags", "image", "audio"])
        wr.writerows(rows)
    groups_a = np.asarray(groups)
    n_groups = len(PHOTOS)
    inter = []
    for u in range(n_users):
        pref = rng.dirichlet(np.full(n_groups, 0.15))
        n = int(rng.integers(interactions_per_user[0], interactions_per_user[1] + 1))
        g = rng.choice(n_groups, size=n, p=pref)
        picked = set()
        for gg in g:
            cand = np.flatnonzero(groups_a == gg)
            picked.add(int(rng.choice(cand)))
        for i in sorted(picked):
            inter.append([f"u{u:04d}", rows[i][0], str(int(rng.integers(3, 6))), str(1_700_000_000 + len(inter))])
    if broken:
        inter.append(["u0000", "no_such_item", "5", "1"])
        inter.append(["u0001", "another_missing_item", "4", "2"])
    with open(root / "interactions.csv", "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["user_id", "item_id", "rating", "timestamp"])
        wr.writerows(inter)
    return {"root": str(root), "items": len(rows), "users": n_users, "interactions": len(inter),
            "groups": {r[0]: PHOTOS[g] for r, g in zip(rows, groups)}, "broken": broken_info}
