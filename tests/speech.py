"""Real speech for tests: espeak-ng when it is installed, else speech-like audio made here.

The synthetic fallback is a voiced source (a glottal-like pulse train with a moving pitch) shaped
by three moving formants and cut into syllables with pauses, so that clips have the structure of
speech (silences, onsets, harmonics) rather than of a tone. Lengths differ with the text.
"""
from __future__ import annotations

import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

PHRASES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A face and a voice of the same person.",
    "Seven.",
    "How much wood would a woodchuck chuck if a woodchuck could chuck wood?",
    "Good morning, this is a test of the verification system.",
    "Numbers: one, two, three, four, five.",
    "Hello there.",
]

HAVE_ESPEAK = shutil.which("espeak-ng") is not None


def _synthetic(text: str, sr: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    out = []
    for word in text.split():
        n = int(sr * (0.08 + 0.045 * len(word)))
        t = np.arange(n) / sr
        f0 = 110 + 30 * rng.random() + 20 * np.sin(2 * np.pi * 3 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        source = np.sign(np.sin(phase)) * (np.sin(phase) ** 2)
        voiced = np.zeros(n)
        for formant in (500 + 300 * rng.random(), 1500 + 500 * rng.random(), 2500 + 400 * rng.random()):
            voiced += np.sin(2 * np.pi * formant * t) * (0.5 + 0.5 * source)
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.5
        out.append(0.2 * envelope * voiced + 0.01 * rng.standard_normal(n))
        out.append(0.002 * rng.standard_normal(int(sr * 0.06)))
    return np.concatenate(out).astype(np.float32)


def write_speech(path: Path, text: str, sr: int = 16000) -> Path:
    """A wav of ``text`` spoken (espeak-ng at its own rate, else synthetic at ``sr``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if HAVE_ESPEAK:
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    else:
        sf.write(path, _synthetic(text, sr), sr)
    return path


def speech(text: str, tmp: Path) -> tuple[np.ndarray, int]:
    """``(waveform, rate)`` of ``text`` spoken (written under ``tmp`` and read back)."""
    p = write_speech(tmp / f"{zlib.crc32(text.encode()):08x}.wav", text)
    wave, sr = sf.read(p, dtype="float32")
    return wave, int(sr)
