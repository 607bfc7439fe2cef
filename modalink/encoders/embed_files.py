"""Media files → embedding rows through any registered image or audio encoder.

:func:`embed_files` is the one front end between files on disk and an :class:`~modalink.encoders.Encoder`:
FAME's raw-media extraction and verifier, the classification image features and the
recommendation catalogue all embed files through it, so a file is read, preprocessed and
embedded the same way everywhere. Images are read by :func:`modalink.images.read_image`, audio
by :func:`modalink.audio.load_audio` at the contract's sample rate. A file that cannot be used
never stops the loop: it comes back as a :class:`FileEmbedding` without an embedding, with its
``problem`` (the reader's reason tag: ``missing_image``, ``unreadable_image``, ``symlink_loop``,
``unreadable_audio``, ``silent_audio`` ...) and ``detail``. Inputs the encoder refuses (no face
under ``no_face="skip"``) or embeds through a fallback (the centre crop of an image without a
face) are reported the same way.
"""
from __future__ import annotations

import errno
import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, NamedTuple, Sequence

import numpy as np

from modalink.audio import AudioError, audio_num_frames, load_audio
from modalink.errors import InputError
from modalink.images import ImageError, read_image

if TYPE_CHECKING:  # pragma: no cover
    from modalink.encoders.base import Encoder

__all__ = ["MediaProblem", "FileEmbedding", "embed_files", "read_media_file", "unreadable_file", "printable_path"]


class MediaProblem(NamedTuple):
    """Why a file gave no usable input: ``reason`` (a short tag for counting) and ``detail``."""

    reason: str
    detail: str = ""


@dataclass
class FileEmbedding:
    """What :func:`embed_files` made of one file.

    ``relpath`` is the path as given (relative to ``root`` when one was given) and ``index`` its
    position in the list. ``embedding`` is ``None`` when the file gave no usable input
    (``problem`` says why); an embedding together with a ``problem`` was computed through a
    fallback (e.g. ``no_face``: no face was detected and the centre of the image was used).
    ``stage`` says who refused or flagged the file: ``"read"`` (the file itself) or ``"encoder"``.
    """

    relpath: str
    embedding: np.ndarray | None
    problem: str | None = None
    detail: str = ""
    index: int = -1
    stage: Literal["", "read", "encoder"] = ""


def printable_path(path: str | os.PathLike) -> str:
    """``path`` as text any file can hold: bytes that are not valid UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def unreadable_file(path: str | os.PathLike) -> MediaProblem | None:
    """Why ``path`` cannot be opened as a regular file (``symlink_loop``, ``broken_link``,
    ``missing_file``, ``not_a_file``, ``unreadable_file``); ``None`` when it can."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            return MediaProblem("symlink_loop", "symbolic link loop: the link points (through other links) back "
                                "at itself; replace it with the file it should name")
        if p.is_symlink():
            return MediaProblem("broken_link", f"symbolic link to {printable_path(os.readlink(p))}, which does "
                                "not exist")
        if isinstance(e, FileNotFoundError):
            return MediaProblem("missing_file", "file not found")
        return MediaProblem("unreadable_file", _short(e))
    if not stat.S_ISREG(st.st_mode):
        return MediaProblem("not_a_file", "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    return None


#: the reason a file that is not there (or not a file) counts under, by input kind
_NOT_THERE = {"image": "missing_image", "audio": "unreadable_audio"}


def read_media_file(path: str | os.PathLike, kind: Literal["image", "audio"], sample_rate: int | None = None,
                    min_seconds: float = 0.0) -> Any:
    """One file as an encoder's raw input — an RGB ``PIL.Image`` for ``kind="image"``, a mono
    float32 waveform at ``sample_rate`` for ``kind="audio"`` (clips shorter than ``min_seconds``
    refused) — or a :class:`MediaProblem` naming the reader's reason (``symlink_loop`` for a link
    loop, whatever the kind)."""
    bad = unreadable_file(path)
    if bad is not None:
        return bad if bad.reason == "symlink_loop" else MediaProblem(_NOT_THERE[kind], bad.detail)
    try:
        if kind == "image":
            return read_image(path)
        return load_audio(path, int(sample_rate or 0), min_seconds=min_seconds)
    except (ImageError, AudioError) as e:
        return MediaProblem(e.reason, e.detail)


class _Files:
    """A map-style dataset of ``(index, raw input or MediaProblem)`` (picklable for workers)."""

    def __init__(self, paths: Sequence[Path], read: Callable[[Path], Any]) -> None:
        self.paths, self.read = list(paths), read

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.read(self.paths[i])


def _as_list(batch: list) -> list:
    return batch


_FALLBACK_DETAIL = {"no_face": "no face detected"}
_DROPPED_DETAIL = {"no_face": "no face detected (no-face policy: skip)",
                   "too_short_audio": "shorter than the voice encoder's minimum length"}


def embed_files(encoder: "Encoder", paths: Sequence[str | os.PathLike], *, root: str | os.PathLike | None = None,
                batch_size: int = 32, workers: int = 0, min_seconds: float = 0.0, by_length: bool = True,
                full_batches: bool = False, desc: str | None = None,
                progress: bool = True) -> Iterator[list[FileEmbedding]]:
    """Read, preprocess and embed files; yields lists of :class:`FileEmbedding` as they are done
    (every file once, in no set order).

    The encoder's input kind decides the reader (see the module docstring); ``workers``
    DataLoader processes read the files, ``batch_size`` at a time, and the encoder embeds the
    usable inputs of each such batch (``full_batches=True``: batches of ``batch_size`` usable
    inputs, a file that cannot be read taking no place; an encoder's output can differ in the
    last bits with the batch it is in, so a caller keeps the batching its embeddings were made
    with). Audio files are embedded shortest first, so batches pad little
    (``by_length=False``: in the given order), and clips shorter than ``min_seconds`` are refused.
    ``paths`` are relative to ``root`` (``None``: used as given). Shows a progress bar unless
    ``progress=False``.
    """
    from torch.utils.data import DataLoader

    from modalink.progress import progress_bar

    kind = encoder.contract.input_kind
    names = [os.fspath(p) for p in paths]
    full = [Path(n) if root is None else Path(root) / n for n in names]
    order = list(range(len(names)))
    sr = int(encoder.contract.sample_rate or 0)
    if kind == "audio" and by_length:
        order.sort(key=lambda i: (audio_num_frames(full[i]), names[i]))
    elif kind not in ("image", "audio"):  # pragma: no cover - contracts validate input_kind
        raise InputError(f"encoder {encoder.contract.name}: unsupported input kind {kind!r}")
    if not order:
        return
    size = max(1, int(batch_size))
    read = functools.partial(read_media_file, kind=kind, sample_rate=sr, min_seconds=min_seconds)
    loader = DataLoader(_Files([full[i] for i in order], read), batch_size=size,  # type: ignore[arg-type]
                        num_workers=workers, collate_fn=_as_list)
    pending: list[tuple[int, Any]] = []  # usable inputs waiting for a full encoder batch
    with progress_bar(total=len(order), desc=desc, unit="img" if kind == "image" else "clip",
                      enabled=progress) as bar:
        for batch in loader:
            results = []
            for k, item in batch:
                i = order[k]
                if isinstance(item, MediaProblem):
                    results.append(FileEmbedding(names[i], None, item.reason, item.detail, i, "read"))
                else:
                    pending.append((i, item if kind == "image" else (item, sr)))
            while pending and (len(pending) >= size or not full_batches):
                results += _embed_inputs(encoder, pending[:size], names)
                del pending[:size]
            bar.update(len(batch))
            if results:
                yield results
        if pending:
            yield _embed_inputs(encoder, pending, names)


def _embed_inputs(encoder: "Encoder", inputs: list[tuple[int, Any]], names: Sequence[str]) -> list[FileEmbedding]:
    """One encoder batch of ``(position, raw input)`` → its :class:`FileEmbedding` rows (inputs the
    encoder refuses come back with its reason)."""
    results: list[FileEmbedding] = []
    eb = encoder.preprocess_batch([item for _, item in inputs])
    embs = encoder.embed_batch(eb).float().cpu().numpy()
    for row, k in enumerate(eb.kept):
        note = eb.flagged.get(k)
        i = inputs[k][0]
        results.append(FileEmbedding(names[i], embs[row], note, _FALLBACK_DETAIL.get(note or "", note or ""), i,
                                     "encoder" if note else ""))
    for k, reason in eb.dropped.items():
        i = inputs[k][0]
        results.append(FileEmbedding(names[i], None, reason, _DROPPED_DETAIL.get(reason, reason), i, "encoder"))
    return results
