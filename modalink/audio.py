"""Audio input: read with soundfile, mix to mono, resample, and reject unusable clips.

Every format the installed libsndfile decodes is read the same way (WAV, FLAC, MP3, OGG/Vorbis,
OGG/Opus, AIFF, ...); :data:`AUDIO_EXTENSIONS` lists their file extensions, so scanners pick up
exactly the files this loader can read.

Every problem with a file raises a subclass of :class:`AudioError` that names the file, so a
feature-extraction loop can ``except AudioError``, count the reason and move on.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from modalink.errors import FileFormatError

#: File extensions of the container formats libsndfile (through soundfile) can decode, by its
#: format name; :data:`AUDIO_EXTENSIONS` keeps those this soundfile build actually supports.
_FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"), "AU": (".au", ".snd"), "CAF": (".caf",),
    "NIST": (".sph", ".nist"), "VOC": (".voc",), "HTK": (".htk",), "PAF": (".paf",), "PVF": (".pvf",),
    "SVX": (".8svx", ".svx"), "XI": (".xi",), "AVR": (".avr",), "SD2": (".sd2",), "WVE": (".wve",),
    "SDS": (".sds",), "IRCAM": (".sf", ".ircam"),
}


def audio_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format :func:`load_audio` can decode here."""
    try:
        available = set(sf.available_formats())
    except Exception:  # noqa: BLE001 - an odd libsndfile build: fall back to the basics
        available = {"WAV", "FLAC"}
    return frozenset(ext for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in available for ext in exts)


#: Extensions :func:`load_audio` decodes with this soundfile build (``.wav``, ``.flac``, ``.mp3``, ``.ogg`` ...).
AUDIO_EXTENSIONS = audio_extensions()


class AudioError(FileFormatError):
    """An audio file that cannot be used. ``reason`` is a short tag for counting."""

    reason = "bad_audio"


class AudioReadError(AudioError):
    """The file is missing, corrupt, not audio, or holds NaN/inf samples."""

    reason = "unreadable_audio"


class EmptyAudioError(AudioError):
    """The file decodes to zero samples."""

    reason = "empty_audio"


class TooShortAudioError(AudioError):
    """The file is shorter than the caller's minimum duration."""

    reason = "too_short_audio"


class SilentAudioError(AudioError):
    """Every sample is (near) zero: no speaker can be heard."""

    reason = "silent_audio"


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D signal with a polyphase filter (``scipy.signal.resample_poly``).

    The rational factor ``target_sr / orig_sr`` is reduced first, so 44.1 kHz → 16 kHz is an
    exact 160/441 conversion. Returns float32; the input is returned unchanged (as float32)
    when the rates match.
    """
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} → {target_sr}")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_sr == target_sr:
        return wave
    from scipy.signal import resample_poly  # 2 s to import: only when a clip is resampled

    g = math.gcd(int(orig_sr), int(target_sr))
    out = resample_poly(wave, int(target_sr) // g, int(orig_sr) // g)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_mono(wave: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) → (frames,) by averaging channels."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim == 1:
        return wave
    if wave.ndim == 2:
        return wave.mean(axis=1, dtype=np.float32)
    raise ValueError(f"expected a (frames,) or (frames, channels) array, got shape {wave.shape}")


def check_waveform(wave: np.ndarray, path: str | os.PathLike, sample_rate: int, *,
                   min_seconds: float = 0.0, silence_threshold: float = 1e-4) -> np.ndarray:
    """Apply the usability policy to a decoded mono waveform; raise an :class:`AudioError`.

    * zero samples → :class:`EmptyAudioError`
    * NaN or inf samples → :class:`AudioReadError`
    * shorter than ``min_seconds`` → :class:`TooShortAudioError`
    * peak ``|x|`` below ``silence_threshold`` (default 1e-4, i.e. −80 dBFS) → :class:`SilentAudioError`
    """
    if wave.size == 0:
        raise EmptyAudioError(path, "no samples")
    if not np.all(np.isfinite(wave)):
        raise AudioReadError(path, "contains NaN or infinite samples")
    if min_seconds > 0 and wave.shape[0] < min_seconds * sample_rate:
        raise TooShortAudioError(
            path, f"{wave.shape[0] / sample_rate:.3f} s is shorter than the minimum {min_seconds} s"
        )
    if float(np.max(np.abs(wave))) < silence_threshold:
        raise SilentAudioError(path, f"silent (peak amplitude below {silence_threshold:g})")
    return wave


def load_audio(path: str | os.PathLike, target_sr: int, *, min_seconds: float = 0.0,
               silence_threshold: float = 1e-4) -> np.ndarray:
    """Read ``path`` with soundfile → mono float32 at ``target_sr`` (resampled if needed).

    Raises an :class:`AudioError` subclass (never a bare soundfile error) when the file cannot
    be used; see :func:`check_waveform` for the policy. ``min_seconds`` is checked after
    resampling.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(path, "file not found")
    if path.stat().st_size == 0:
        raise EmptyAudioError(path, "empty file (0 bytes)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioReadError(path, f"cannot decode audio ({e})") from None
    wave = to_mono(data)
    if wave.size == 0:
        raise EmptyAudioError(path, "no samples")
    if not np.all(np.isfinite(wave)):
        raise AudioReadError(path, "contains NaN or infinite samples")
    wave = resample(wave, int(sr), int(target_sr))
    return check_waveform(wave, path, target_sr, min_seconds=min_seconds,
                          silence_threshold=silence_threshold)


def audio_num_frames(path: str | os.PathLike) -> int:
    """Number of frames in ``path`` from its header (cheap); 0 when the header is unreadable."""
    try:
        return int(sf.info(str(path)).frames)
    except Exception:  # noqa: BLE001 - a broken header is reported later by load_audio
        return 0
