"""What an exported FAME face–voice model was trained for, and the check that it fits where it is used.

A FAME model only means something for the MAV-Celeb version, the training language and the
features it was trained on. :func:`trained_for` is the record train.py puts in the exported
model's input contract (``config.json``); :func:`check_trained_for` refuses a model used for
another version or language (e.g. the English and German models of a run swapped), or on
features of other widths or from another source, with one line naming both sides.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from modalink.errors import UserError

__all__ = ["ModelMismatchError", "feature_source", "trained_for", "check_trained_for"]


class ModelMismatchError(UserError, ValueError):
    """An exported model used for another version, language or kind of features than it was trained for."""


def _encoder(entry: Any) -> dict[str, Any]:
    entry = entry if isinstance(entry, Mapping) else {}
    weights = (f"random (seed {entry.get('seed')})" if entry.get("random_weights")
               else Path(str(entry["weights"])).name if entry.get("weights") else None)
    return {"name": entry.get("name"), "args": dict(entry.get("args") or {}), "weights": weights}


def feature_source(feature_info: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where features come from: ``{"source": "prepare.py", "face_encoder": ..., "voice_encoder": ...}``
    for features recipes/fame/prepare.py made (its ``feature_info.json``), else ``{"source": "csv"}``
    (the official VGGFace / utterance features, the synthetic set, or any other CSVs)."""
    if not feature_info or "face_encoder" not in feature_info or "voice_encoder" not in feature_info:
        return {"source": "csv"}
    return {"source": "prepare.py", "face_encoder": _encoder(feature_info["face_encoder"]),
            "voice_encoder": _encoder(feature_info["voice_encoder"])}


def trained_for(ver: str, train_lang: str | None, face_dim: int, voice_dim: int,
                feature_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of what a FAME model was trained for (part of its exported input contract);
    ``train_lang=None`` leaves the language out (a record shared by a run's models)."""
    out = {"task": "fame", "ver": ver, "train_lang": train_lang, "face_dim": int(face_dim),
           "voice_dim": int(voice_dim), "features": feature_source(feature_info)}
    return {k: v for k, v in out.items() if v is not None}


def _describe(src: Mapping[str, Any]) -> str:
    if src.get("source") != "prepare.py":
        return "CSV features without a prepare.py feature_info.json"
    enc = [f"{m} {src[f'{m}_encoder'].get('name')} ({src[f'{m}_encoder'].get('weights') or 'default weights'})"
           for m in ("face", "voice")]
    return "prepare.py features of " + " / ".join(enc)


def check_trained_for(contract: Mapping[str, Any], *, where: str | Path, ver: str | None = None,
                      train_lang: str | None = None, face_dim: int | None = None, voice_dim: int | None = None,
                      feature_info: Mapping[str, Any] | None | bool = False) -> None:
    """Refuse a model whose recorded ``contract`` (its ``config.json`` ``contract``) does not fit the
    use: another version, training language, feature widths or feature source. Arguments left at
    their default are not checked (``feature_info=None`` means features without a feature_info.json);
    what the contract does not record is not checked either."""
    wanted = {"ver": ver, "train_lang": train_lang, "face_dim": face_dim, "voice_dim": voice_dim}
    for key, want in wanted.items():
        got = contract.get(key)
        if want is None or got is None or got == want:
            continue
        if key in ("ver", "train_lang"):
            raise ModelMismatchError(
                f"{where} is the model trained on {contract.get('train_lang', '?')} ({contract.get('ver', '?')}), but "
                f"it is used as the {train_lang or contract.get('train_lang')} ({ver or contract.get('ver')}) model; "
                f"put each language's model back in its own <ver>_<Lang>/model folder, or retrain")
        raise ModelMismatchError(f"{where} was trained on {got}-D {key[:-4]} features, these are {want}-D; score it "
                                 f"with the features it was trained on")
    recorded = contract.get("features")
    if feature_info is False or not isinstance(recorded, Mapping):
        return
    here = feature_source(feature_info if isinstance(feature_info, Mapping) else None)
    if dict(recorded) != here:
        raise ModelMismatchError(f"{where} was trained on {_describe(recorded)}, but these are {_describe(here)}; "
                                 f"score it with the features it was trained on")
