"""Does a trained model get the embeddings it was trained on? Input identities compared.

A model trained on pre-extracted embeddings (a FAME face–voice model, an SRMM classifier) only
means something on embeddings from the same encoder: same registered name, same width, same
weights. Two encoders of the same width (FaceNet and ResNet-18 both give 512-D vectors) are not
interchangeable, so a width check is not enough.

An *input identity* is a small dict ``{"encoder": name, "output_dim": width, "weights": id}``
(:func:`input_identity`; any key may be missing = not recorded; a caller may add keys of its own,
e.g. the encoder's ``args``, compared the same way). ``weights`` is
:func:`weights_identity`: ``"<file name> blake2b:<digest of the bytes>"`` for a weights file or
folder, ``"random (seed N)"`` for seeded random weights, ``"none"`` for an encoder without
weights. :func:`check_input_contract` compares what a model expects with what made its inputs and
raises :class:`InputContractError` (one line, naming both sides and the override setting), or,
with the override on, logs a warning and returns the differences.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from modalink.errors import UserError

__all__ = ["InputContractError", "input_identity", "weights_identity", "encoder_input_identity",
           "check_input_contract", "IDENTITY_KEYS"]

logger = logging.getLogger(__name__)

#: the keys of every input identity, first in messages (extra keys a caller adds follow, sorted)
IDENTITY_KEYS = ("encoder", "output_dim", "weights")

_DIGESTS: dict[tuple[str, int, int], str] = {}


class InputContractError(UserError, ValueError):
    """Embeddings made by another encoder than the one a model was trained on."""


def input_identity(encoder: str | None, output_dim: int | None = None, weights: str | None = None,
                   **extra: Any) -> dict[str, Any]:
    """``{"encoder", "output_dim", "weights"}`` (and any ``extra`` key a caller compares too, e.g.
    the encoder's ``args``) without the entries that are ``None``."""
    out: dict[str, Any] = {"encoder": encoder, "output_dim": int(output_dim) if output_dim is not None else None,
                           "weights": weights, **extra}
    return {k: v for k, v in out.items() if v is not None}


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def weights_identity(path: str | os.PathLike | None = None, *, random: bool = False,
                     seed: int | None = None) -> str | None:
    """Identity of an encoder's weights: ``"random (seed N)"`` with ``random=True``; for a file
    or folder, its name and a digest of its bytes (a folder: of every file in it), so the same
    weights in two places agree; ``None`` when ``path`` is ``None`` or not on this machine. A
    non-path reference (``"timm:resnet18.a1_in1k"``) is returned as it is."""
    if random:
        return "random" if seed is None else f"random (seed {int(seed)})"
    if path is None or str(path) == "":
        return None
    text = str(path)
    if ":" in text.split("/", 1)[0] and not Path(text).exists() and not (len(text) > 1 and text[1] == ":"):
        return text  # a hub reference such as timm:<name>
    p = Path(path)
    if p.is_file():
        return f"{p.name} blake2b:{_file_digest(p)}"
    if p.is_dir():
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f.relative_to(p).as_posix().encode("utf-8") + b"\0" + _file_digest(f).encode("ascii"))
        return f"{p.name}/ blake2b:{h.hexdigest()}"
    return None


def encoder_input_identity(encoder: Any, name: str | None = None, seed: int | None = None,
                           **extra: Any) -> dict[str, Any]:
    """The input identity of a built encoder: ``name`` (default: its contract's name), its
    output width and :func:`weights_identity` of the weights it loaded (``weights_path``), or
    ``"random (seed N)"`` when it loaded none (``seed``: the seed it was built under), or
    ``"none"`` for an encoder without parameters."""
    full = encoder.identity(seed)
    return input_identity(name or encoder.contract.name, full["output_dim"], full["weights"], **extra)


def _normalise(identity: Mapping[str, Any] | None) -> dict[str, Any]:
    keys = [*IDENTITY_KEYS, *sorted(set(identity or {}) - set(IDENTITY_KEYS))]
    return {k: identity[k] for k in keys if identity and identity.get(k) is not None}


def _same(key: str, a: Any, b: Any) -> bool:
    """Equal values; two weights files with the same digest are the same weights whatever their names."""
    if key == "weights" and isinstance(a, str) and isinstance(b, str) and " blake2b:" in a and " blake2b:" in b:
        return a.rsplit(" blake2b:", 1)[1] == b.rsplit(" blake2b:", 1)[1]
    return a == b


def _describe(identity: Mapping[str, Any]) -> str:
    name = identity.get("encoder", "an unrecorded encoder")
    extra = [f"{identity['output_dim']}-D" if "output_dim" in identity else "",
             f"weights {identity['weights']}" if "weights" in identity else ""]
    extra = [e for e in extra if e]
    return f"{name} ({', '.join(extra)})" if extra else str(name)


def check_input_contract(expected: Mapping[str, Any] | None, actual: Mapping[str, Any] | None, what: str,
                         override: bool = False, override_hint: str = "") -> list[str]:
    """Compare the input identity a model was trained on (``expected``) with the one of the
    encoder that made its inputs (``actual``); keys missing on either side are not compared.

    Returns the differences (``"weights A vs B"``, ...; empty when they agree). A difference
    raises :class:`InputContractError`, one line starting with ``what`` (e.g. ``"<model folder>,
    face input"``) that names both sides and ``override_hint`` (the setting that accepts it);
    with ``override=True`` it is logged as a warning instead and returned."""
    want, have = _normalise(expected), _normalise(actual)
    diffs = [f"{k} {want[k]} vs {have[k]}" for k in want
             if k in have and not _same(k, want[k], have[k])]
    if not diffs:
        return []
    text = (f"{what}: the model was trained on embeddings of {_describe(want)}, but these come from "
            f"{_describe(have)} ({'; '.join(diffs)})")
    if override:
        logger.warning("%s; used anyway (override set)", text)
        return diffs
    hint = f", or set {override_hint} to use them anyway" if override_hint else ""
    raise InputContractError(f"{text}; make them with the encoder the model was trained on{hint}")
